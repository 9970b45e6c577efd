# When the server of a session is out: `strict` (the request fails with 502 instead of reaching
# a server that does not know the session) against the default (a substitute, `rebound` or
# `fallback`), for a learned session on a server marked down and on a server whose port is
# closed, for route labels, and for the route cookie with and without a session id; the
# handshake never fails. `proxy_next_upstream_tries` and one try per server; a server at
# `max_conns`; `balance=least_conn`.
#
# Mock backends A, B, C listen on ports fixed for the whole file ($TEST_NGINX_FAULT_PORT_1..3)
# and are written into each block's configuration (t/lib/StickyPages.pm), so a block can leave
# one out (its port is then closed). The file runs in HUP mode: the session learned in TEST 1
# lives on in zone "faults" through the reloads of the next blocks.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use StickyPages;
use StickyCookie;

repeat_each(1);
no_shuffle();
use_hup();
log_level('info');

::fixed_ports('TEST_NGINX_FAULT_PORT_', 3);

sub ::backends { return "    access_log off;\n" . ::mock_backends('TEST_NGINX_FAULT_PORT_', @_) }

sub ::cookie_of {
    my $s = "127.0.0.1:$ENV{'TEST_NGINX_FAULT_PORT_' . (ord(shift) - ord('A') + 1)}";
    return ::cookie_id('k3y', undef, $s, $s);
}

# The upstreams of TEST 1-3: `strict` and the default over A and B, both with the zone
# "faults"; `only_b` teaches the zone a session minted by B.
our $Upstreams = <<'_EOC_';
    upstream strict {
        socketio_sticky zone=faults:1m strict cookie=r cookie_key=k3y route=^(b[0-9]+)-;
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_FAULT_PORT_1;
        socketio_sticky_route b2 127.0.0.1:$TEST_NGINX_FAULT_PORT_2;
        server 127.0.0.1:$TEST_NGINX_FAULT_PORT_1;
        server 127.0.0.1:$TEST_NGINX_FAULT_PORT_2 B_PARAMS;
    }
    upstream loose {
        socketio_sticky zone=faults cookie=r cookie_key=k3y route=^(b[0-9]+)-;
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_FAULT_PORT_1;
        socketio_sticky_route b2 127.0.0.1:$TEST_NGINX_FAULT_PORT_2;
        server 127.0.0.1:$TEST_NGINX_FAULT_PORT_1;
        server 127.0.0.1:$TEST_NGINX_FAULT_PORT_2 B_PARAMS;
    }
    upstream only_b {
        socketio_sticky zone=faults;
        server 127.0.0.1:$TEST_NGINX_FAULT_PORT_2;
    }
_EOC_

sub ::upstreams { (my $u = $Upstreams) =~ s/B_PARAMS/$_[0]/g; return $u }

our $Locations = <<'_EOC_';
    location /strict/ {
        proxy_pass http://strict;
        add_header X-Status $socketio_sticky_status always;
        add_header X-Upstream $upstream_addr always;
    }
    location /loose/ {
        proxy_pass http://loose;
        add_header X-Status $socketio_sticky_status always;
        add_header X-Upstream $upstream_addr always;
    }
    location /only_b/ {
        proxy_pass http://only_b;
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: a session minted by B is learned; while B is up, both upstreams send it there
--- http_config eval
::backends(qw(A B C)) . ::upstreams('')
--- config eval
$::Locations
--- request eval
["GET /only_b/?EIO=4&transport=polling&mint=sB-Kx2Ut0yX",
 "GET /strict/?EIO=4&transport=polling&sid=sB-Kx2Ut0yX",
 "GET /loose/?EIO=4&transport=polling&sid=sB-Kx2Ut0yX"]
--- response_body_like eval
[qr/"sid":"sB-Kx2Ut0yX"/, "^B\n\\z", "^B\n\\z"]
--- response_headers eval
["", "X-Status: learned", "X-Status: learned"]
--- no_error_log
[error]
[warn]



=== TEST 2: B marked down: with strict, requests of sessions on B fail with 502 (learned, route label, cookie with a sid); handshakes and cookies without a sid go elsewhere; without strict, everything goes to A
--- http_config eval
::backends(qw(A B C)) . ::upstreams('down')
--- config eval
$::Locations
--- request eval
["GET /strict/?EIO=4&transport=polling&sid=sB-Kx2Ut0yX",
 "GET /strict/?EIO=4&transport=polling&sid=b2-Qz4Rk9Xc",
 "GET /strict/?EIO=4&transport=polling&sid=unknown-Qz4Rk9Xc",
 "GET /strict/?EIO=4&transport=polling",
 "GET /strict/?EIO=4&transport=polling&sid=sB-Kx2Ut0yX&device_id=dev-1",
 "GET /loose/?EIO=4&transport=polling&sid=sB-Kx2Ut0yX",
 "GET /loose/?EIO=4&transport=polling&sid=sB-Kx2Ut0yX&device_id=dev-1",
 "GET /loose/?EIO=4&transport=polling&sid=b2-Qz4Rk9Xc",
 "GET /loose/?EIO=4&transport=polling&sid=unknown-Qz4Rk9Xc"]
--- more_headers eval
["", "", "Cookie: r=" . ::cookie_of('B'), "Cookie: r=" . ::cookie_of('B'), "", "", "", "",
 "Cookie: r=" . ::cookie_of('B')]
--- error_code eval
[502, 502, 502, 200, 502, 200, 200, 200, 200]
--- response_body_like eval
["502 Bad Gateway", "502 Bad Gateway", "502 Bad Gateway", "^A\n\\z", "502 Bad Gateway",
 "^A\n\\z", "^A\n\\z", "^A\n\\z", "^A\n\\z"]
--- response_headers eval
["X-Status: strict", "X-Status: strict", "X-Status: strict", "X-Status: fallback",
 "X-Status: strict", "X-Status: fallback", "X-Status: rebound", "X-Status: fallback",
 "X-Status: fallback"]
--- no_error_log
[warn]



=== TEST 3: B's port closed (B up in the configuration): with strict the first request of B's session fails after B's connect fails, without a second try; then B counts as failed (max_fails=1) and is never tried again
--- http_config eval
::backends(qw(A C)) . ::upstreams('max_fails=1 fail_timeout=30s')
--- config eval
$::Locations
--- request eval
["GET /strict/?EIO=4&transport=polling&sid=sB-Kx2Ut0yX",
 "GET /strict/?EIO=4&transport=polling&sid=sB-Kx2Ut0yX",
 "GET /loose/?EIO=4&transport=polling&sid=sB-Kx2Ut0yX",
 "GET /loose/?EIO=4&transport=polling&sid=sB-Kx2Ut0yX"]
--- error_code eval
[502, 502, 200, 200]
--- response_headers eval
["X-Status: strict", "X-Status: strict", "X-Status: fallback", "X-Status: fallback"]
--- raw_response_headers_like eval
[qr/X-Upstream: 127\.0\.0\.1:$ENV{TEST_NGINX_FAULT_PORT_2}, strict\r\n/,
 qr/X-Upstream: strict\r\n/,
 qr/X-Upstream: 127\.0\.0\.1:$ENV{TEST_NGINX_FAULT_PORT_2}, 127\.0\.0\.1:$ENV{TEST_NGINX_FAULT_PORT_1}\r\n/,
 qr/X-Upstream: 127\.0\.0\.1:$ENV{TEST_NGINX_FAULT_PORT_1}\r\n/]



=== TEST 4: proxy_next_upstream_tries: at most that many servers, none twice; without a limit, every primary server once, then the live backup
--- http_config eval
::backends(qw(A)) . <<'_EOC_'
    upstream dead {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_FAULT_PORT_2 max_fails=0;
        server 127.0.0.1:$TEST_NGINX_FAULT_PORT_3 max_fails=0;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1 max_fails=0;
        server 127.0.0.1:$TEST_NGINX_FAULT_PORT_1 backup;
    }
_EOC_
--- config
    location /two/ {
        proxy_pass http://dead;
        proxy_next_upstream_tries 2;
        add_header X-Upstream $upstream_addr always;
    }
    location /all/ {
        proxy_pass http://dead;
        add_header X-Upstream $upstream_addr always;
        add_header X-Status $socketio_sticky_status always;
    }
--- request eval
[(map { "GET /two/?device_id=dev-$_" } 1 .. 6), (map { "GET /all/?device_id=dev-$_" } 1 .. 6)]
--- error_code eval
[(502) x 6, (200) x 6]
--- raw_response_headers_like eval
[(qr/X-Upstream: 127\.0\.0\.1:(\d+), (?!\1\r)127\.0\.0\.1:\d+\r\n/) x 6,
 (qr/X-Upstream: (?:127\.0\.0\.1:(?!$ENV{TEST_NGINX_FAULT_PORT_1})\d+, ){3}127\.0\.0\.1:$ENV{TEST_NGINX_FAULT_PORT_1}\r\n/) x 6]
--- raw_response_headers_unlike eval
[(qr/X-Upstream: [^\r]*127\.0\.0\.1:$ENV{TEST_NGINX_FAULT_PORT_1}/) x 6,
 (qr/X-Upstream: [^\r]*\b(127\.0\.0\.1:\d+)\b[^\r]*\b\1\b/) x 6]



=== TEST 5: a server at max_conns is out: while a slow request holds B's one connection, B's session goes to A (fallback: round robin chose it)
--- http_config eval
::backends(qw(A)) . <<'_EOC_'
    log_subrequest on;
    log_format mc '$uri?$args $status $upstream_addr $socketio_sticky_status';
    upstream mc {
        socketio_sticky route=^(b[0-9]+)-;
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_FAULT_PORT_1;
        socketio_sticky_route b9 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_FAULT_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2 max_conns=1;
    }
_EOC_
--- config
    access_log logs/access.log mc;
    ssi on;
    ssi_types *;
    location /mc/ {
        proxy_pass http://mc/;
    }
--- user_files
>>> page.html
<!--# include virtual="/mc/?sid=b9-slow" --><!--# include virtual="/mc/?sid=b9-second" -->
--- tcp_listen: $TEST_NGINX_RAND_PORT_2
--- tcp_reply_delay: 1s
--- tcp_reply eval
"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nSLOW\n"
--- request
GET /page.html
--- response_body_like eval
qr/\ASLOW\nA\n\n\z/
--- access_log eval
[qr{^/mc/\?sid=b9-slow 200 127\.0\.0\.1:\d+ route$},
 qr{^/mc/\?sid=b9-second 200 127\.0\.0\.1:$ENV{TEST_NGINX_FAULT_PORT_1} fallback$}]



=== TEST 6: the same with strict: the second request of B's session fails with 502
--- http_config eval
::backends(qw(A)) . <<'_EOC_'
    log_subrequest on;
    log_format mc '$uri?$args $status $socketio_sticky_status';
    upstream mc {
        socketio_sticky route=^(b[0-9]+)- strict;
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_FAULT_PORT_1;
        socketio_sticky_route b9 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_FAULT_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2 max_conns=1;
    }
_EOC_
--- config
    access_log logs/access.log mc;
    ssi on;
    ssi_types *;
    location /mc/ {
        proxy_pass http://mc/;
    }
--- user_files
>>> page.html
<!--# include virtual="/mc/?sid=b9-slow" --><!--# include virtual="/mc/?sid=b9-second" -->
--- tcp_listen: $TEST_NGINX_RAND_PORT_2
--- tcp_reply_delay: 1s
--- tcp_reply eval
"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nSLOW\n"
--- request
GET /page.html
--- response_body_like eval
qr/\ASLOW\n<html>[\s\S]*502 Bad Gateway/
--- access_log eval
[qr{^/mc/\?sid=b9-slow 200 route$}, qr{^/mc/\?sid=b9-second 502 strict$}]



=== TEST 7: balance=least_conn: while a slow request holds a connection to B, the next two new sessions go to A and to C (round robin would send the second to B)
--- http_config eval
::backends(qw(A C)) . <<'_EOC_'
    log_subrequest on;
    log_format lc '$uri?$args $status $upstream_addr $socketio_sticky_status';
    upstream lc {
        socketio_sticky balance=least_conn route=^(b[0-9]+)-;
        socketio_sticky_route b2 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_FAULT_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_FAULT_PORT_3;
    }
_EOC_
--- config
    access_log logs/access.log lc;
    ssi on;
    ssi_types *;
    location /lc/ {
        proxy_pass http://lc/;
    }
--- user_files
>>> page.html
<!--# include virtual="/lc/?sid=b2-slow" --><!--# include virtual="/lc/?EIO=4&n=1" --><!--# include virtual="/lc/?EIO=4&n=2" -->
--- tcp_listen: $TEST_NGINX_RAND_PORT_2
--- tcp_reply_delay: 1s
--- tcp_reply eval
"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nSLOW\n"
--- request
GET /page.html
--- response_body_like eval
qr/\ASLOW\n(?:A\nC\n|C\nA\n)\n\z/
--- access_log eval
[qr{^/lc/\?EIO=4&n=1 200 127\.0\.0\.1:(?:$ENV{TEST_NGINX_FAULT_PORT_1}|$ENV{TEST_NGINX_FAULT_PORT_3}) fallback$},
 qr{^/lc/\?EIO=4&n=2 200 127\.0\.0\.1:(?:$ENV{TEST_NGINX_FAULT_PORT_1}|$ENV{TEST_NGINX_FAULT_PORT_3}) fallback$}]
--- no_error_log
[error]
