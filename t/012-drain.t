# `server ... drain` (nginx 1.29.6 and later): a draining server keeps every request bound to it
# (a learned session id, a route label, a route cookie) and gets nothing new (handshakes that
# nothing binds, devices whose server it is); `strict` does not count it as out. Every block is
# skipped on older nginx.
#
# Mock backends A, B, C listen on ports fixed for the whole file ($TEST_NGINX_DRAIN_PORT_1..3),
# so their identities and route cookie ids are the same in every block. A request with
# `mint=SID` is a handshake answered with an Engine.IO 4 open packet naming SID, which the
# module learns; any other request is answered with the backend's name. The file runs in HUP
# mode: every block reloads the running nginx, whose zone keeps the sessions learned in TEST 1.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use StickyPages;
use StickyCookie;

repeat_each(1);
no_shuffle();
use_hup();
log_level('info');

::fixed_ports('TEST_NGINX_DRAIN_PORT_', 3);

our %Port = (A => $ENV{TEST_NGINX_DRAIN_PORT_1}, B => $ENV{TEST_NGINX_DRAIN_PORT_2},
             C => $ENV{TEST_NGINX_DRAIN_PORT_3});

# The route cookie of backend X (cookie_key=k3y).
sub ::cookie_of {
    my $s = "127.0.0.1:$Port{$_[0]}";
    return "Cookie: r=" . ::cookie_id('k3y', undef, $s, $s);
}

# Thirty device ids: with three servers, some of them have A as their server.
our @Devices = ::ids(30);

my $Backends = ::mock_backends('TEST_NGINX_DRAIN_PORT_', qw(A B C));

add_block_preprocessor(sub {
    my $block = shift;
    return unless defined $block->config;
    $block->set_value(http_config => "    access_log off;\n" . $Backends
                      . (defined $block->http_config ? $block->http_config : ''));
});

run_tests();

__DATA__

=== TEST 1: sessions learned on A and B (handshakes sent by their route cookies)
--- skip_nginx: 9: < 1.29.6
--- http_config
    upstream backend {
        socketio_sticky zone=drain:1m route=^(x[0-9])- cookie=r cookie_key=k3y;
        socketio_sticky_route x1 127.0.0.1:$TEST_NGINX_DRAIN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_2;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_3;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
["GET /socket.io/?EIO=4&transport=polling&mint=onA-Vb7Hk2Pd",
 "GET /socket.io/?EIO=4&transport=polling&mint=onB-Vb7Hk2Pd",
 "GET /socket.io/?EIO=4&transport=polling&sid=onA-Vb7Hk2Pd",
 "GET /socket.io/?EIO=4&transport=polling&sid=onB-Vb7Hk2Pd"]
--- more_headers eval
[::cookie_of('A'), ::cookie_of('B'), "", ""]
--- response_body_like eval
[qr/"sid":"onA-/, qr/"sid":"onB-/, "^A\n\\z", "^B\n\\z"]
--- response_headers eval
["X-Status: cookie", "X-Status: cookie", "X-Status: learned", "X-Status: learned"]
--- no_error_log
[error]
[warn]
Vb7Hk2Pd



=== TEST 2: A drains: its learned session, its route label and its route cookie still reach it
--- skip_nginx: 12: < 1.29.6
--- http_config
    upstream backend {
        socketio_sticky zone=drain:1m route=^(x[0-9])- cookie=r cookie_key=k3y;
        socketio_sticky_route x1 127.0.0.1:$TEST_NGINX_DRAIN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_1 drain;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_2;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_3;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
["GET /socket.io/?EIO=4&transport=polling&sid=onA-Vb7Hk2Pd",
 "GET /socket.io/?EIO=4&transport=websocket&sid=onA-Vb7Hk2Pd",
 "GET /socket.io/?EIO=4&transport=polling&sid=onB-Vb7Hk2Pd",
 "GET /socket.io/?EIO=4&transport=polling&sid=x1-Kd9Wq2Zs",
 "GET /socket.io/?EIO=4&transport=polling&mint=onA2-Vb7Hk2Pd"]
--- more_headers eval
["", "", "", "", ::cookie_of('A')]
--- response_body_like eval
["^A\n\\z", "^A\n\\z", "^B\n\\z", "^A\n\\z", qr/"sid":"onA2-/]
--- response_headers eval
["X-Status: learned", "X-Status: learned", "X-Status: learned", "X-Status: route",
 "X-Status: cookie"]
--- no_error_log
[error]
[warn]



=== TEST 3: A drains: handshakes that nothing binds and devices whose server is A go elsewhere
--- skip_nginx: 180: < 1.29.6
--- http_config
    upstream backend {
        socketio_sticky zone=drain:1m route=^(x[0-9])- cookie=r cookie_key=k3y;
        socketio_sticky_route x1 127.0.0.1:$TEST_NGINX_DRAIN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_1 drain;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_2;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_3;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
[(map { "GET /socket.io/?EIO=4&transport=polling&mint=new$_-Vb7Hk2Pd" } 1 .. 6),
 (map { "GET /socket.io/?device_id=$_" } @::Devices)]
--- raw_response_headers_like eval
[(qr/\r\nX-Backend: [BC]\r\n/) x 6, (qr/\r\nX-Backend: [BC]\r\n/) x 30]
--- response_headers_like eval
[("X-Status: fallback") x 6, ("X-Status: (?:device_id|rebound)") x 30]
--- no_error_log
[error]
[warn]



=== TEST 4: strict: a draining server is not out, its sessions are served
--- skip_nginx: 8: < 1.29.6
--- http_config
    upstream backend {
        socketio_sticky zone=drain:1m strict;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_1 drain;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_2;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_3;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
["GET /socket.io/?EIO=4&transport=polling&sid=onA-Vb7Hk2Pd",
 "GET /socket.io/?EIO=4&transport=polling&sid=onA2-Vb7Hk2Pd",
 "GET /socket.io/?EIO=4&transport=polling&sid=onB-Vb7Hk2Pd"]
--- response_body_like eval
["^A\n\\z", "^A\n\\z", "^B\n\\z"]
--- response_headers eval
[("X-Status: learned") x 3]
--- no_error_log
[error]
[warn]



=== TEST 5: A is back: devices go home (none rebound), handshakes reach A again
--- skip_nginx: 180: < 1.29.6
--- http_config
    upstream backend {
        socketio_sticky zone=drain:1m;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_2;
        server 127.0.0.1:$TEST_NGINX_DRAIN_PORT_3;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
[(map { "GET /socket.io/?EIO=4&transport=polling&mint=back$_-Vb7Hk2Pd" } 1 .. 6),
 (map { "GET /socket.io/?device_id=$_" } @::Devices)]
--- raw_response_headers_like eval
[(qr/\r\nX-Backend: [ABC]\r\n/) x 36]
--- response_headers_like eval
[("X-Status: fallback") x 6, ("X-Status: device_id") x 30]
--- no_error_log
[error]
[warn]
