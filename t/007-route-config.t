# Configuration of route labels (route=, socketio_sticky_route) and of the route cookie
# (cookie=, cookie_*): accepted forms, and the errors `nginx -t` reports with the directive,
# the reason and the place.

use Test::Nginx::Socket 'no_plan';

repeat_each(1);

run_tests();

__DATA__

=== TEST 1: every route and cookie parameter; labels before and after the server lines
--- http_config
    upstream backend {
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_SERVER_PORT;
        socketio_sticky route=^(b[0-9]+)- cookie=srv_route cookie_path=/socket.io/
                        cookie_domain=.example.com cookie_max_age=1d cookie_secure
                        cookie_httponly=off cookie_samesite=none "cookie_key=a long secret";
        server 127.0.0.1:$TEST_NGINX_SERVER_PORT;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2 down;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_3 backup;
        socketio_sticky_route b2 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        socketio_sticky_route legacy-1 127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
--- config
    location = /b {
        return 200 "backend\n";
    }
    location /socket.io/ {
        proxy_pass http://backend/b;
        add_header X-Status $socketio_sticky_status;
    }
--- request
GET /socket.io/?EIO=4&transport=polling&sid=b1-AbCdEfGh
--- response_body
backend
--- response_headers
X-Status: route
--- raw_response_headers_like eval
qr{\r\nSet-Cookie: srv_route=[0-9a-f]{16}; Path=/socket.io/; Domain=.example.com; Max-Age=86400; Secure; SameSite=None\r\n}
--- no_error_log
[error]
[warn]



=== TEST 2: positional labels need no socketio_sticky_route lines
--- http_config
    upstream backend {
        socketio_sticky route=([0-9])$;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
--- config
    location = /b {
        return 200 "backend\n";
    }
    location /socket.io/ {
        proxy_pass http://backend/b;
        add_header X-Status $socketio_sticky_status;
    }
--- request
GET /socket.io/?EIO=4&transport=polling&sid=AbCdEfGh2
--- response_body
backend
--- response_headers
X-Status: route
--- no_error_log
[error]
[warn]



=== TEST 3: route= with an invalid regex
--- http_config
    upstream backend {
        socketio_sticky route=^(b[0-9]+-;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has invalid regex in "route=\^\(b\[0-9\]\+-": .* in \S*nginx\.conf:\d+}



=== TEST 4: route= without a capture group
--- http_config
    upstream backend {
        socketio_sticky route=^b[0-9]+-;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has a regex without a capture group in "route=\^b\[0-9\]\+-" in \S*nginx\.conf:\d+}



=== TEST 5: route= twice
--- http_config
    upstream backend {
        socketio_sticky route=(.) route=(..);
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has parameter "route" twice in \S*nginx\.conf:\d+}



=== TEST 6: socketio_sticky_route names no server of the upstream
--- http_config
    upstream backend {
        socketio_sticky route=^(b[0-9]+)-;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        socketio_sticky_route b2 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky_route" directive label "b2" names "127\.0\.0\.1:\d+", which is not a server of this upstream in \S*nginx\.conf:\d+}



=== TEST 7: socketio_sticky_route names a backup server
--- http_config
    upstream backend {
        socketio_sticky route=^(b[0-9]+)-;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_3 backup;
        socketio_sticky_route b3 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky_route" directive label "b3" names the backup server "127\.0\.0\.1:\d+" \(routes go to primary servers only\) in \S*nginx\.conf:\d+}



=== TEST 8: socketio_sticky_route without route=
--- http_config
    upstream backend {
        socketio_sticky;
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky_route" directive needs "route=" in the "socketio_sticky" directive of upstream "backend" in \S*nginx\.conf:\d+}



=== TEST 9: socketio_sticky_route in an upstream without socketio_sticky
--- http_config
    upstream backend {
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky_route" directive needs "socketio_sticky" in the same upstream in \S*nginx\.conf:\d+}



=== TEST 10: the same label twice
--- http_config
    upstream backend {
        socketio_sticky route=^(b[0-9]+)-;
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky_route" directive has label "b1" more than once in the upstream in \S*nginx\.conf:\d+}



=== TEST 11: an empty label
--- http_config
    upstream backend {
        socketio_sticky route=^(b[0-9]+)-;
        socketio_sticky_route "" 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky_route" directive has invalid label "" in \S*nginx\.conf:\d+}



=== TEST 12: socketio_sticky_route with one argument
--- http_config
    upstream backend {
        socketio_sticky route=^(b[0-9]+)-;
        socketio_sticky_route b1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*invalid number of arguments in "socketio_sticky_route" directive in \S*nginx\.conf:\d+}



=== TEST 13: cookie= with an invalid name
--- http_config
    upstream backend {
        socketio_sticky "cookie=a;b";
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has invalid cookie name "a;b" in \S*nginx\.conf:\d+}



=== TEST 14: a cookie attribute without cookie=
--- http_config
    upstream backend {
        socketio_sticky cookie_path=/socket.io/;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has "cookie_path=/socket.io/" without "cookie=" in \S*nginx\.conf:\d+}



=== TEST 15: cookie_samesite=none without cookie_secure
--- http_config
    upstream backend {
        socketio_sticky cookie=r cookie_samesite=none;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has "cookie_samesite=none" without "cookie_secure" \(browsers reject such cookies\) in \S*nginx\.conf:\d+}



=== TEST 16: cookie_max_age=0
--- http_config
    upstream backend {
        socketio_sticky cookie=r cookie_max_age=0;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has invalid value in "cookie_max_age=0" in \S*nginx\.conf:\d+}



=== TEST 17: a relative cookie_path
--- http_config
    upstream backend {
        socketio_sticky cookie=r cookie_path=socket.io;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has invalid value in "cookie_path=socket\.io" in \S*nginx\.conf:\d+}



=== TEST 18: cookie_secure=yes
--- http_config
    upstream backend {
        socketio_sticky cookie=r cookie_secure=yes;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has invalid value in "cookie_secure=yes" in \S*nginx\.conf:\d+}



=== TEST 19: cookie_samesite with an unknown value
--- http_config
    upstream backend {
        socketio_sticky cookie=r cookie_samesite=sometimes;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has invalid value in "cookie_samesite=sometimes" in \S*nginx\.conf:\d+}



=== TEST 20: an invalid cookie_domain
--- http_config
    upstream backend {
        socketio_sticky cookie=r cookie_domain=a/b;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has invalid value in "cookie_domain=a/b" in \S*nginx\.conf:\d+}



=== TEST 21: an empty cookie_key
--- http_config
    upstream backend {
        socketio_sticky cookie=r cookie_key=;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has invalid value in "cookie_key=" in \S*nginx\.conf:\d+}



=== TEST 22: cookie= twice
--- http_config
    upstream backend {
        socketio_sticky cookie=r cookie=s;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has parameter "cookie" twice in \S*nginx\.conf:\d+}



=== TEST 23: socketio_sticky_route is not allowed at http level
--- http_config
    socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
--- config
    location /t {
        return 200;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky_route" directive is not allowed here in \S*nginx\.conf:\d+}
