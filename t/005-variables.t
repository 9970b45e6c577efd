# $socketio_sticky_key and $socketio_sticky_status, read in response headers (add_header) and
# in SSI output: "device_id" when the device's own backend took the request, "rebound" when
# another one did, "fallback" for round robin; both are not found for requests that did not
# go through a socketio_sticky upstream.

use Test::Nginx::Socket 'no_plan';

repeat_each(1);

run_tests();

__DATA__

=== TEST 1: device_id: the key used and status device_id
--- http_config
    upstream backend {
        socketio_sticky device_id=header:X-Device,arg:device_id;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1\n";
    }
--- config
    location /t {
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
        add_header X-Sticky-Key $socketio_sticky_key always;
    }
--- pipelined_requests eval
["GET /t?device_id=dev-1", "GET /t?device_id=dev%2D2", "GET /t?device_id=ignored"]
--- more_headers eval
["", "", "X-Device: from-header"]
--- response_headers eval
[
    "X-Sticky-Status: device_id\nX-Sticky-Key: dev-1",
    "X-Sticky-Status: device_id\nX-Sticky-Key: dev-2",
    "X-Sticky-Status: device_id\nX-Sticky-Key: from-header",
]
--- response_body eval
[("b1\n") x 3]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 2: fallback: no device_id, no key
--- http_config
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b\n";
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        return 200 "b\n";
    }
--- config
    location /t {
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
        add_header X-Sticky-Key $socketio_sticky_key always;
    }
--- pipelined_requests eval
["GET /t", "GET /t?device_id=", "GET /t?sid=abc"]
--- response_headers eval
[("X-Sticky-Status: fallback\n!X-Sticky-Key") x 3]
--- response_body eval
[("b\n") x 3]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 3: rebound: the device's backend answers 503, the next one takes the request
--- http_config
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 503 "busy\n";
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        return 503 "busy\n";
    }
--- config
    location /t {
        proxy_next_upstream error timeout http_503;
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
        add_header X-Sticky-Key $socketio_sticky_key always;
    }
--- request
GET /t?device_id=dev-3
--- error_code: 503
--- response_headers
X-Sticky-Status: rebound
X-Sticky-Key: dev-3
--- response_body
busy
--- no_error_log
[error]
[alert]
[crit]



=== TEST 4: rebound: both backends' ports closed, 502 after trying both
--- http_config
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
--- config
    location /t {
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
        add_header X-Sticky-Key $socketio_sticky_key always;
    }
--- request
GET /t?device_id=dev-4
--- error_code: 502
--- response_headers
X-Sticky-Status: rebound
X-Sticky-Key: dev-4
--- error_log
connect() failed (111: Connection refused) while connecting to upstream
--- no_error_log
[alert]
[crit]



=== TEST 5: rebound at max_conns: two concurrent requests of one device, max_conns=1 each
The second request finds the device's backend at max_conns and goes to the other one.
--- http_config
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" --> <!--# echo var="socketio_sticky_key" -->';
    }
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1 max_conns=1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2 max_conns=1;
    }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1; return 200 "b1 $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2; return 200 "b2 $report\n"; }
--- config
    ssi on;
    ssi_types *;
    location /t {
        proxy_pass http://backend;
    }
--- user_files eval
[["p.html", CORE::join "", map { qq{<!--# include virtual="/t?device_id=$_" -->}
                          . qq{<!--# include virtual="/t?device_id=$_" wait="yes" -->} }
                      map { "mc-$_" } 1 .. 20]]
--- request
GET /p.html
--- response_body_like eval
my $pair = q{(b[12]) device_id (mc-\d+)\n(?!\g{-2} )b[12] rebound \g{-1}\n};
qr/\A(?:$pair){20}\z/
--- no_error_log
[error]
[alert]
[crit]



=== TEST 6: not found outside a socketio_sticky upstream (no proxying, plain upstream)
--- http_config
    upstream plain {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1\n";
    }
--- config
    location /plain {
        proxy_pass http://plain;
        add_header X-Sticky-Status $socketio_sticky_status always;
        add_header X-Sticky-Key $socketio_sticky_key always;
    }
    location /local {
        return 200 "[$socketio_sticky_status][$socketio_sticky_key]\n";
    }
--- pipelined_requests eval
["GET /plain?device_id=d", "GET /local?device_id=d"]
--- response_headers eval
["!X-Sticky-Status\n!X-Sticky-Key", "!X-Sticky-Status\n!X-Sticky-Key"]
--- response_body eval
["b1\n", "[][]\n"]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 7: the variables in the access log
--- http_config
    log_format sticky "sticky: status=$socketio_sticky_status key=$socketio_sticky_key";
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1\n";
    }
--- config
    location /t {
        access_log logs/sticky.log sticky;
        proxy_pass http://backend;
    }
    location /log {
        alias logs/sticky.log;
    }
--- pipelined_requests eval
["GET /t?device_id=logged", "GET /t", "GET /log"]
--- response_body eval
["b1\n", "b1\n", "sticky: status=device_id key=logged\nsticky: status=fallback key=-\n"]
--- no_error_log
[error]
[alert]
[crit]
