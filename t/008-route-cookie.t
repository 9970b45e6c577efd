# Routing a fleet of nginx nodes without shared state: route labels carried in session ids
# (route=, socketio_sticky_route) and the route cookie nginx issues (cookie=). Labels by
# position and by name, labels that name no server, servers that are out, the precedence list
# (route, learned, cookie, device_id, round robin), cookie values checked against ids computed
# independently (t/lib/StickyCookie.pm), tampered and unknown cookies, no cookie for backup
# servers or for nginx's own error responses, and cookies and labels that stay valid when a
# reload reorders and adds server lines.
#
# Mock backends A, B, C, D listen on ports fixed for the whole file ($TEST_NGINX_FLEET_PORT_1..4),
# so their identities ("127.0.0.1:PORT"), and with them the cookie values, are the same in every
# block. A backend answers with its name and a header X-Backend; a request with `mint=SID` and
# no sid is a handshake, answered with an Engine.IO 4 open packet naming SID (learned by the
# module). The front server adds X-Status: $socketio_sticky_status.
#
# The file runs in HUP mode: every block reloads the running nginx, so TEST 8 checks cookies
# across a reload that reorders the server lines.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use StickyPages;
use StickyCookie;

repeat_each(1);
no_shuffle();
use_hup();
log_level('info');

::fixed_ports('TEST_NGINX_FLEET_PORT_', 4);

our %Port = (A => $ENV{TEST_NGINX_FLEET_PORT_1}, B => $ENV{TEST_NGINX_FLEET_PORT_2},
             C => $ENV{TEST_NGINX_FLEET_PORT_3}, D => $ENV{TEST_NGINX_FLEET_PORT_4});

# The cookie value of backend X with cookie_key=KEY (undef: none) in upstream UPSTREAM.
sub ::id {
    my ($x, $key, $upstream) = @_;
    my $s = "127.0.0.1:$Port{$x}";
    return ::cookie_id($key, $upstream, $s, $s);
}

# A response header block in which backend X answered and nginx issued X's cookie NAME.
sub ::issued {
    my ($name, $key, $upstream, @backends) = @_;
    my $alt = join '|', map {
        my $id = ::id($_, $key, $upstream);
        "X-Backend: $_\\r\\n(?:[^\\r]*\\r\\n)*?Set-Cookie: \Q$name\E=$id; Path=/; HttpOnly\\r\\n"
    } @backends;
    return qr{\r\n(?:$alt)};
}

my $Backends = ::mock_backends('TEST_NGINX_FLEET_PORT_', qw(A B C D));

add_block_preprocessor(sub {
    my $block = shift;
    return unless defined $block->config;
    $block->set_value(http_config => "    access_log off;\n" . $Backends
                      . (defined $block->http_config ? $block->http_config : ''));
});

run_tests();

__DATA__

=== TEST 1: positional labels: the label is the server line's number; backup lines, numbers past the end, sids without a label fall through
--- http_config
    upstream backend {
        socketio_sticky route=\.([0-9]+)$;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_2;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_3;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_4 backup;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
[map { "GET /socket.io/?EIO=4&transport=polling&sid=Kx2Ut0yX$_" } ".1", ".2", ".3", ".02", ".1", ".4", ".5", ".0", "", ".x"]
--- response_body_like eval
["^A\n\\z", "^B\n\\z", "^C\n\\z", "^B\n\\z", "^A\n\\z", ("^[ABC]\n\\z") x 5]
--- response_headers eval
[("X-Status: route") x 5, ("X-Status: fallback") x 5]
--- no_error_log
[error]
[warn]
Kx2Ut0yX



=== TEST 2: explicit labels replace positions; a label of no server and a numeric label fall through
--- http_config
    upstream backend {
        socketio_sticky route=^([a-z0-9]+)-;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_2;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_3;
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        socketio_sticky_route b2 127.0.0.1:$TEST_NGINX_FLEET_PORT_3;
        socketio_sticky_route old 127.0.0.1:$TEST_NGINX_FLEET_PORT_2;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
[map { "GET /socket.io/?EIO=4&transport=websocket&sid=$_" } "b1-Qz4Rk9Xc", "b2-Qz4Rk9Xc", "old-Qz4Rk9Xc", "b3-Qz4Rk9Xc", "1-Qz4Rk9Xc", "B1-Qz4Rk9Xc"]
--- response_body_like eval
["^A\n\\z", "^C\n\\z", "^B\n\\z", ("^[ABC]\n\\z") x 3]
--- response_headers eval
[("X-Status: route") x 3, ("X-Status: fallback") x 3]
--- no_error_log
[error]
[warn]



=== TEST 3: a label whose server is down: the device decides (rebound), or round robin without one
--- http_config
    upstream backend {
        socketio_sticky route=^(b[0-9]+)-;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_2 down;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_3;
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        socketio_sticky_route b2 127.0.0.1:$TEST_NGINX_FLEET_PORT_2;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
["GET /socket.io/?EIO=4&transport=polling&sid=b2-Wl8lY0pS",
 "GET /socket.io/?EIO=4&transport=polling&sid=b2-Wl8lY0pS&device_id=dev-7",
 "GET /socket.io/?EIO=4&transport=polling&sid=b2-Wl8lY0pS&device_id=dev-7",
 "GET /socket.io/?EIO=4&transport=polling&sid=b1-Wl8lY0pS&device_id=dev-7"]
--- response_body_like eval
["^[AC]\n\\z", "^[AC]\n\\z", "^[AC]\n\\z", "^A\n\\z"]
--- response_headers eval
["X-Status: fallback", "X-Status: rebound", "X-Status: rebound", "X-Status: route"]
--- no_error_log
[error]
[warn]



=== TEST 4: precedence: route, then the learned session, then the cookie, then device_id
--- http_config
    upstream backend {
        socketio_sticky route=^(b[0-9]+)- cookie=r cookie_key=k3y;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_2;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_3;
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        socketio_sticky_route b2 127.0.0.1:$TEST_NGINX_FLEET_PORT_2;
        socketio_sticky_route b3 127.0.0.1:$TEST_NGINX_FLEET_PORT_3;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
[
 # A handshake sent to A by its cookie; A mints "b2-onA" (its label says B) and "zz-onA".
 "GET /socket.io/?EIO=4&transport=polling&mint=b2-onA-Tq8WzL3x",
 "GET /socket.io/?EIO=4&transport=polling&mint=zz-onA-Tq8WzL3x",
 # route beats learned: B, not A.
 "GET /socket.io/?EIO=4&transport=polling&sid=b2-onA-Tq8WzL3x",
 # learned beats the cookie (C): A.
 "GET /socket.io/?EIO=4&transport=polling&sid=zz-onA-Tq8WzL3x",
 # the cookie (C) beats device_id.
 "GET /socket.io/?EIO=4&transport=polling&device_id=dev-7",
 # device_id alone.
 "GET /socket.io/?EIO=4&transport=polling&device_id=dev-7",
]
--- more_headers eval
["Cookie: r=" . ::id('A', 'k3y'), "Cookie: r=" . ::id('A', 'k3y'), "Cookie: r=" . ::id('A', 'k3y'),
 "Cookie: r=" . ::id('C', 'k3y'), "Cookie: r=" . ::id('C', 'k3y'), ""]
--- response_body_like eval
[qr/"sid":"b2-onA/, qr/"sid":"zz-onA/, "^B\n\\z", "^A\n\\z", "^C\n\\z", "^[ABC]\n\\z"]
--- response_headers eval
["X-Status: cookie", "X-Status: cookie", "X-Status: route", "X-Status: learned",
 "X-Status: cookie", "X-Status: device_id"]
--- no_error_log
[error]
[warn]
b2-onA
zz-onA



=== TEST 5: a request without the route cookie gets the cookie of the backend that answered; one with it goes there and gets none
--- http_config
    upstream backend {
        socketio_sticky cookie=srv_route cookie_key=k3y;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_2;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_3;
    }
    upstream one {
        socketio_sticky cookie=r;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_4;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
    location /one/ {
        proxy_pass http://one;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
["GET /socket.io/?EIO=4&transport=polling",
 "GET /socket.io/?EIO=4&transport=polling",
 "GET /socket.io/?EIO=4&transport=polling",
 "GET /socket.io/?EIO=4&transport=polling",
 "GET /socket.io/?EIO=4&transport=polling",
 "GET /one/?EIO=4&transport=polling"]
--- more_headers eval
["", "Cookie: srv_route=" . ::id('B', 'k3y'), "Cookie: io=x; srv_route=" . ::id('C', 'k3y') . "; other=1",
 "Cookie: srv_route=" . ::id('A', 'k3y'), "Cookie: srv_route=" . ::id('A', 'other-key'), ""]
--- response_body_like eval
["^[ABC]\n\\z", "^B\n\\z", "^C\n\\z", "^A\n\\z", "^[ABC]\n\\z", "^D\n\\z"]
--- response_headers eval
["X-Status: fallback", "X-Status: cookie", "X-Status: cookie", "X-Status: cookie", "X-Status: fallback", "X-Status: fallback"]
--- raw_response_headers_like eval
[::issued('srv_route', 'k3y', undef, qw(A B C)), qr/^(?!.*Set-Cookie)/s, qr/^(?!.*Set-Cookie)/s,
 qr/^(?!.*Set-Cookie)/s, ::issued('srv_route', 'k3y', undef, qw(A B C)),
 ::issued('r', undef, 'one', 'D')]
--- no_error_log
[error]
[warn]



=== TEST 6: tampered, unknown and malformed cookies count as absent: the device decides, and the cookie is reissued
--- http_config
    upstream backend {
        socketio_sticky cookie=r cookie_key=k3y;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_2;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_3;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
[("GET /socket.io/?EIO=4&transport=polling&device_id=dev-tamper") x 8]
--- more_headers eval
[map { "Cookie: r=$_" }
 (substr(::id('B', 'k3y'), 0, 15) . (substr(::id('B', 'k3y'), 15) eq '0' ? '1' : '0'),  # one digit changed
  uc(::id('B', 'k3y')),                      # upper case
  substr(::id('B', 'k3y'), 0, 15),           # too short
  ::id('B', 'k3y') . '0',                    # too long
  'ffffffffffffffff',                        # well-formed, no such backend
  '"' . ::id('B', 'k3y') . '"x',             # quotes and garbage
  '',                                         # empty
  ::id('B', 'k3y') . '%00')]                 # trailing bytes
--- response_body_like eval
[("^[ABC]\n\\z") x 8]
--- response_headers eval
[("X-Status: device_id") x 8]
--- raw_response_headers_like eval
[(::issued('r', 'k3y', undef, qw(A B C))) x 8]
--- no_error_log
[error]
[warn]



=== TEST 7: a cookie for a backend that is down: a substitute, whose cookie is issued; never a cookie for a backup server or for nginx's own error
--- http_config
    upstream backend {
        socketio_sticky cookie=r cookie_key=k3y;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_2 down;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_3;
    }
    upstream backup_only {
        socketio_sticky cookie=r cookie_key=k3y;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_2 down;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_4 backup;
    }
    upstream closed {
        socketio_sticky cookie=r cookie_key=k3y;
        server 127.0.0.1:1;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status always;
    }
    location /backup/ {
        proxy_pass http://backup_only;
        add_header X-Status $socketio_sticky_status always;
    }
    location /closed/ {
        proxy_pass http://closed;
        add_header X-Status $socketio_sticky_status always;
    }
--- request eval
["GET /socket.io/?EIO=4&transport=polling",
 "GET /socket.io/?EIO=4&transport=polling&device_id=dev-7",
 "GET /backup/?EIO=4&transport=polling",
 "GET /closed/?EIO=4&transport=polling"]
--- more_headers eval
[("Cookie: r=" . ::id('B', 'k3y')) x 2, "", ""]
--- error_code eval
[200, 200, 200, 502]
--- response_body_like eval
["^[AC]\n\\z", "^[AC]\n\\z", "^D\n\\z", "502 Bad Gateway"]
--- response_headers eval
["X-Status: fallback", "X-Status: rebound", "X-Status: fallback", "X-Status: fallback"]
--- raw_response_headers_like eval
[::issued('r', 'k3y', undef, qw(A C)), ::issued('r', 'k3y', undef, qw(A C)),
 qr/^(?!.*Set-Cookie)/s, qr/^(?!.*Set-Cookie)/s]



=== TEST 8: after a reload that reorders the server lines and adds one, cookies and explicit labels name the same backends
--- http_config
    upstream backend {
        socketio_sticky route=^(b[0-9]+)- cookie=r cookie_key=k3y;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_4;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_3;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_2;
        socketio_sticky_route b3 127.0.0.1:$TEST_NGINX_FLEET_PORT_3;
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        socketio_sticky_route b2 127.0.0.1:$TEST_NGINX_FLEET_PORT_2;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
[("GET /socket.io/?EIO=4&transport=polling") x 3,
 "GET /socket.io/?EIO=4&transport=polling&sid=b1-Ge3Xf9Ks",
 "GET /socket.io/?EIO=4&transport=polling&sid=b2-Ge3Xf9Ks"]
--- more_headers eval
[(map { "Cookie: r=" . ::id($_, 'k3y') } qw(A B C)), "", ""]
--- response_body_like eval
["^A\n\\z", "^B\n\\z", "^C\n\\z", "^A\n\\z", "^B\n\\z"]
--- response_headers eval
[("X-Status: cookie") x 3, ("X-Status: route") x 2]
--- raw_response_headers_like eval
[(qr/^(?!.*Set-Cookie)/s) x 3,
 ::issued('r', 'k3y', undef, 'A'), ::issued('r', 'k3y', undef, 'B')]
--- no_error_log
[error]
[warn]



=== TEST 9: the migration from `if ($uri ~* "websocket/.*1$")`: Socket.IO 0.9 ids ending in the process number, in the path and in ?sid=
--- http_config
    upstream backend {
        socketio_sticky route=([0-9])$;
        socketio_sticky_route 1 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        socketio_sticky_route 2 127.0.0.1:$TEST_NGINX_FLEET_PORT_2;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_1;
        server 127.0.0.1:$TEST_NGINX_FLEET_PORT_2;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
["GET /socket.io/1/websocket/4d4f185e96a7b1",
 "GET /socket.io/1/xhr-polling/4d4f185e96a7b2?t=1",
 "GET /socket.io/1/websocket/4d4f185e96a7b2",
 "GET /socket.io/?EIO=3&transport=polling&sid=Kx2Ut0yX_Qp1",
 "GET /socket.io/1/?device_id=1234567"]
--- response_body_like eval
["^A\n\\z", "^B\n\\z", "^B\n\\z", "^A\n\\z", "^[AB]\n\\z"]
--- response_headers eval
[("X-Status: route") x 4, "X-Status: device_id"]
--- no_error_log
[error]
[warn]
4d4f185e96a7b
