# The socketio_sticky directive: accepted forms, where it may appear, how it combines with
# other upstream directives, and the configuration errors it reports.

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



=== TEST 7: unknown parameter
--- http_config
    upstream backend {
        socketio_sticky foo=1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has unknown parameter "foo=1" in \S*nginx\.conf:\d+/



=== TEST 8: a known parameter name without a value is unknown
--- http_config
    upstream backend {
        socketio_sticky sid;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has unknown parameter "sid" in \S*nginx\.conf:\d+/



=== TEST 9: invalid source
--- http_config
    upstream backend {
        socketio_sticky sid=bogus;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has invalid source "bogus" in "sid=bogus", expected arg:NAME, cookie:NAME, header:NAME, path, uri:REGEX or \$variable in \S*nginx\.conf:\d+/



=== TEST 10: invalid source later in a device_id list
--- http_config
    upstream backend {
        socketio_sticky device_id=arg:a,cookie:;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has invalid source "cookie:" in "device_id=arg:a,cookie:", expected .* in \S*nginx\.conf:\d+/



=== TEST 11: invalid variable name as a source
--- http_config
    upstream backend {
        socketio_sticky device_id=$a-b;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has invalid source "\$a-b" in "device_id=\$a-b", expected .* in \S*nginx\.conf:\d+/



=== TEST 12: invalid regex
--- http_config
    upstream backend {
        socketio_sticky device_id=uri:(;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has invalid regex in "device_id=uri:\(": .+ in \S*nginx\.conf:\d+/



=== TEST 13: regex without a capture group
--- http_config
    upstream backend {
        socketio_sticky "device_id=uri:^/x$";
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has a regex without a capture group in "device_id=uri:\^\/x\$" in \S*nginx\.conf:\d+/



=== TEST 14: empty source list
--- http_config
    upstream backend {
        socketio_sticky sid=;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has no sources in "sid=" in \S*nginx\.conf:\d+/



=== TEST 15: the same parameter twice
--- http_config
    upstream backend {
        socketio_sticky device_id=arg:a device_id=arg:b;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has parameter "device_id" twice in \S*nginx\.conf:\d+/



=== TEST 16: the directive twice in one upstream
--- http_config
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        socketio_sticky device_id=arg:d;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive is duplicate in \S*nginx\.conf:\d+/



=== TEST 17: not allowed at http level
--- http_config
    socketio_sticky;
    upstream backend {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive is not allowed here in \S*nginx\.conf:\d+/



=== TEST 18: not allowed in a location
--- config
    location /t {
        socketio_sticky;
        return 200 "x\n";
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive is not allowed here in \S*nginx\.conf:\d+/



=== TEST 19: unknown variable as a source
--- http_config
    upstream backend {
        socketio_sticky device_id=$no_such_variable_here;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*unknown "no_such_variable_here" variable/



=== TEST 20: commas inside a uri: regex do not split the list
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



=== TEST 21: zone= and timeout=: the smallest zone (32k) and nginx time syntax; two upstreams share a zone sized once
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



=== TEST 22: zone too small
--- http_config
    upstream backend {
        socketio_sticky zone=x:1k;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has zone "x" that is too small, the minimum is 32k in \S*nginx\.conf:\d+/



=== TEST 23: zone just under the minimum (31k)
--- http_config
    upstream backend {
        socketio_sticky sid=arg:sid zone=almost:31k;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has zone "almost" that is too small, the minimum is 32k in \S*nginx\.conf:\d+/



=== TEST 24: invalid zone size
--- http_config
    upstream backend {
        socketio_sticky zone=a:1x;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has invalid zone size "1x" in \S*nginx\.conf:\d+/



=== TEST 25: empty zone name
--- http_config
    upstream backend {
        socketio_sticky zone=:1m;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has invalid zone ":1m" in \S*nginx\.conf:\d+/



=== TEST 26: invalid timeout
--- http_config
    upstream backend {
        socketio_sticky timeout=5x;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has invalid timeout "5x" in \S*nginx\.conf:\d+/



=== TEST 27: a zero timeout is invalid
--- http_config
    upstream backend {
        socketio_sticky zone=z:1m timeout=0;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has invalid timeout "0" in \S*nginx\.conf:\d+/



=== TEST 28: a zone named without a size anywhere: nginx's own error
--- http_config
    upstream backend {
        socketio_sticky zone=nosize;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    upstream other {
        socketio_sticky zone=nosize;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*zero size shared memory zone "nosize"/



=== TEST 29: one zone with two different sizes: nginx's own error
--- http_config
    upstream backend {
        socketio_sticky zone=twice:1m;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    upstream other {
        socketio_sticky zone=twice:2m;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*the size \d+ of shared memory zone "twice" conflicts with already declared size \d+/



=== TEST 30: the zone name of another module is refused by nginx
--- http_config
    limit_req_zone $binary_remote_addr zone=taken:1m rate=1r/s;
    upstream backend {
        socketio_sticky zone=taken:1m;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*the shared memory zone "taken" is already declared for a different use/
