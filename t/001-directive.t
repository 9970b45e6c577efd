# The socketio_sticky directive: accepted forms and how it combines with other upstream
# directives. Its configuration errors are in t/014-config-errors.t.

use Test::Nginx::Socket 'no_plan';

repeat_each(1);

run_tests();

__DATA__

=== TEST 1: bare directive, default sources (device_id from arg:device_id)
--- http_config
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
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
        add_header X-Sticky-Key $socketio_sticky_key always;
    }
--- request
GET /t?device_id=dev-1
--- response_body
b1
--- response_headers
X-Sticky-Status: device_id
X-Sticky-Key: dev-1
--- no_error_log
load balancing method redefined
[error]
[alert]
[crit]



=== TEST 2: every parameter and every source kind at once, every server parameter
(the device may live on the down server; then it is rebound to b1)
--- http_config
    upstream backend {
        socketio_sticky "sid=arg:sid,cookie:io,path,header:X-Sid,$http_x_sid,uri:^/sid/([^/]+)"
                        "device_id=header:X-Device,cookie:dev,$http_x_id,arg:d,path,uri:^/u/(\d+)$";
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1 weight=2 max_fails=3 fail_timeout=5s max_conns=100;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2 down;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_3 backup;
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
--- request
GET /t?d=from-arg
--- response_body
b1
--- response_headers_like
X-Sticky-Status: (?:device_id|rebound)
X-Sticky-Key: from-arg
--- no_error_log
load balancing method redefined
[error]
[alert]
[crit]



=== TEST 3: directive after the server lines
(the device may live on the down server; then it is rebound to b1)
--- http_config
    upstream backend {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1 weight=5;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2 down;
        socketio_sticky device_id=arg:id;
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
--- request
GET /t?id=42
--- response_body
b1
--- response_headers_like
X-Sticky-Status: (?:device_id|rebound)
X-Sticky-Key: 42
--- no_error_log
load balancing method redefined
[error]
[alert]
[crit]



=== TEST 4: with zone and keepalive (keepalive after the directive: no warning); backend connections are reused
--- http_config
    upstream backend {
        zone backend_zone 64k;
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        keepalive 4;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1 $connection_requests\n";
    }
--- config
    location /t {
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
    }
--- request eval
["GET /t?device_id=z", "GET /t?device_id=z", "GET /t?device_id=z"]
--- response_body eval
["b1 1\n", "b1 2\n", "b1 3\n"]
--- response_headers eval
[("X-Sticky-Status: device_id") x 3]
--- no_error_log
load balancing method redefined
[error]
[alert]
[crit]



=== TEST 5: another balancer first: "load balancing method redefined", socketio_sticky wins
--- http_config
    upstream backend {
        least_conn;
        socketio_sticky;
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
    }
--- request
GET /t?device_id=w
--- response_body
b1
--- response_headers
X-Sticky-Status: device_id
--- suppress_stderr
--- error_log eval
qr/\[warn\] .*load balancing method redefined in \S*nginx\.conf:\d+/
--- no_error_log
[error]
[alert]
[crit]



=== TEST 6: before nginx 1.29.7, keepalive before the directive is a redefinition too (warned)
--- skip_nginx: 7: >= 1.29.7
--- http_config
    upstream backend {
        keepalive 4;
        socketio_sticky;
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
    }
--- request
GET /t?device_id=w
--- response_body
b1
--- response_headers
X-Sticky-Status: device_id
--- suppress_stderr
--- error_log eval
qr/\[warn\] .*load balancing method redefined in \S*nginx\.conf:\d+/
--- no_error_log
[error]
[alert]
[crit]



=== TEST 6a: before nginx 1.29.7, keepalive before the directive leaves the upstream without keepalive: a connection per request
--- skip_nginx: 8: >= 1.29.7
--- http_config
    upstream backend {
        keepalive 4;
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1 $connection_requests\n";
    }
--- config
    location /t {
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
    }
--- request eval
["GET /t?device_id=w", "GET /t?device_id=w"]
--- response_body eval
["b1 1\n", "b1 1\n"]
--- response_headers eval
[("X-Sticky-Status: device_id") x 2]
--- suppress_stderr
--- no_error_log
[error]
[alert]
[crit]



=== TEST 6b: since nginx 1.29.7, keepalive wraps whatever balancer the upstream has: no warning in either order, connections reused
--- skip_nginx: 8: < 1.29.7
--- http_config
    upstream backend {
        keepalive 4;
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1 $connection_requests\n";
    }
--- config
    location /t {
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
    }
--- request eval
["GET /t?device_id=w", "GET /t?device_id=w", "GET /t?device_id=w"]
--- response_body eval
["b1 1\n", "b1 2\n", "b1 3\n"]
--- response_headers eval
[("X-Sticky-Status: device_id") x 3]
--- no_error_log
load balancing method redefined
[error]
[alert]
[crit]



=== TEST 6c: without a keepalive directive: nginx 1.29.7 and later keep backend connections by default
--- skip_nginx: 8: < 1.29.7
--- http_config
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1 $connection_requests\n";
    }
--- config
    location /t {
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
    }
--- request eval
["GET /t?device_id=w", "GET /t?device_id=w", "GET /t?device_id=w"]
--- response_body eval
["b1 1\n", "b1 2\n", "b1 3\n"]
--- response_headers eval
[("X-Sticky-Status: device_id") x 3]
--- no_error_log
load balancing method redefined
[error]
[alert]
[crit]



=== TEST 6d: without a keepalive directive: before nginx 1.29.7, a connection per request
--- skip_nginx: 6: >= 1.29.7
--- http_config
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1 $connection_requests\n";
    }
--- config
    location /t {
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
    }
--- request eval
["GET /t?device_id=w", "GET /t?device_id=w"]
--- response_body eval
["b1 1\n", "b1 1\n"]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 7: commas inside a uri: regex do not split the list
--- http_config
    upstream backend {
        socketio_sticky "device_id=uri:^/r/(\w{2,4})/,arg:d";
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1\n";
    }
--- config
    location /r/ {
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
        add_header X-Sticky-Key $socketio_sticky_key always;
    }
--- pipelined_requests eval
["GET /r/abcd/x?d=fromarg", "GET /r/abcdefgh/x?d=fromarg"]
--- response_headers eval
["X-Sticky-Status: device_id\nX-Sticky-Key: abcd",
 "X-Sticky-Status: device_id\nX-Sticky-Key: fromarg"]
--- response_body eval
["b1\n", "b1\n"]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 8: zone= and timeout=: the smallest zone (32k) and nginx time syntax; two upstreams share a zone sized once
--- http_config
    upstream backend {
        socketio_sticky zone=smallest:32k timeout=1h30m;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    upstream other {
        socketio_sticky zone=shared:1m timeout=500ms;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    upstream other2 {
        socketio_sticky device_id=arg:d zone=shared timeout=90;
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
    }
    location /o {
        proxy_pass http://other;
        add_header X-Sticky-Status $socketio_sticky_status always;
    }
    location /o2 {
        proxy_pass http://other2;
        add_header X-Sticky-Status $socketio_sticky_status always;
    }
--- pipelined_requests eval
["GET /t?device_id=dev-1", "GET /o", "GET /o2?d=dev-2"]
--- response_headers eval
["X-Sticky-Status: device_id", "X-Sticky-Status: fallback", "X-Sticky-Status: device_id"]
--- response_body eval
[("b1\n") x 3]
--- no_error_log
[error]
[warn]


