# Configuration of route labels (route=, socketio_sticky_route) and of the route cookie
# (cookie=, cookie_*): accepted forms. Their configuration errors are in t/014-config-errors.t.

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


