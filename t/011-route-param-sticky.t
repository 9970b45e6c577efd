# nginx 1.29.6 and later: `server ... route=LABEL` counts as that server's route label (like a
# `socketio_sticky_route LABEL SERVER` line), the configuration errors it can make, and nginx's
# own `sticky` in an upstream with socketio_sticky (refused by `nginx -t`, in either order).
# Every block is skipped on older nginx, which knows neither `route=` on server lines nor
# `sticky`.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use StickyPages;

repeat_each(1);

my $Backends = ::mock_backends('TEST_NGINX_RAND_PORT_', qw(A B C));

add_block_preprocessor(sub {
    my $block = shift;
    return unless defined $block->config && !defined $block->must_die;
    $block->set_value(http_config => "    access_log off;\n" . $Backends
                      . (defined $block->http_config ? $block->http_config : ''));
});

run_tests();

__DATA__

=== TEST 1: labels of server lines route; positions no longer count; a label of no server falls through
--- skip_nginx: 7: < 1.29.6
--- http_config
    upstream backend {
        socketio_sticky route=^([a-z0-9]+)-;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1 route=b1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_3 route=b3;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
[map { "GET /socket.io/?EIO=4&transport=polling&sid=$_-Zq3Lm8Rt" } "b1", "b3", "b1", "2", "b2"]
--- response_body_like eval
["^A\n\\z", "^C\n\\z", "^A\n\\z", "^[ABC]\n\\z", "^[ABC]\n\\z"]
--- response_headers eval
[("X-Status: route") x 3, ("X-Status: fallback") x 2]
--- no_error_log
[error]
[warn]



=== TEST 2: labels of server lines and socketio_sticky_route lines together
--- skip_nginx: 7: < 1.29.6
--- http_config
    upstream backend {
        socketio_sticky route=^([a-z0-9]+)-;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1 route=b1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        socketio_sticky_route b2 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        socketio_sticky_route old 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request eval
[map { "GET /socket.io/?EIO=4&transport=polling&sid=$_-Zq3Lm8Rt" } "b1", "b2", "old", "3", "b3"]
--- response_body_like eval
["^A\n\\z", "^B\n\\z", "^A\n\\z", "^[ABC]\n\\z", "^[ABC]\n\\z"]
--- response_headers eval
[("X-Status: route") x 3, ("X-Status: fallback") x 2]
--- no_error_log
[error]
[warn]



=== TEST 3: a server written twice with one label is one server
--- skip_nginx: 4: < 1.29.6
--- http_config
    upstream backend {
        socketio_sticky route=^([a-z0-9]+)-;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1 route=b1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1 route=b1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request
GET /socket.io/?EIO=4&transport=polling&sid=b1-Zq3Lm8Rt
--- response_body
A
--- response_headers
X-Status: route
--- no_error_log
[error]
[warn]



=== TEST 4: without route= in the directive, labels of server lines are only nginx's (no error, no routing)
--- skip_nginx: 4: < 1.29.6
--- http_config
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1 route=b1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request
GET /socket.io/?EIO=4&transport=polling&sid=b1-Zq3Lm8Rt
--- response_body_like eval
qr/^[AB]\n\z/
--- response_headers
X-Status: fallback
--- no_error_log
[error]
[warn]



=== TEST 5: one label on two servers
--- skip_nginx: 2: < 1.29.6
--- http_config
    upstream backend {
        socketio_sticky route=^([a-z0-9]+)-;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1 route=b1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2 route=b1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has route label "b1" on two servers, "127\.0\.0\.1:\d+" and "127\.0\.0\.1:\d+" in \S*nginx\.conf:\d+/



=== TEST 6: one label given both ways
--- skip_nginx: 2: < 1.29.6
--- http_config
    upstream backend {
        socketio_sticky route=^([a-z0-9]+)-;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1 route=b1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky_route" directive label "b1" that server "127\.0\.0\.1:\d+" has as its "route=" too in \S*nginx\.conf:\d+/



=== TEST 7: a label on a backup server
--- skip_nginx: 2: < 1.29.6
--- http_config
    upstream backend {
        socketio_sticky route=^([a-z0-9]+)-;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2 backup route=b9;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive has route label "b9" on the backup server "127\.0\.0\.1:\d+" \(routes go to primary servers only\) in \S*nginx\.conf:\d+/



=== TEST 8: nginx's sticky after socketio_sticky
--- skip_nginx: 2: < 1.29.6
--- http_config
    upstream backend {
        socketio_sticky;
        sticky cookie srv_id;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive cannot be used with nginx's "sticky" in the same upstream \(socketio_sticky keeps sessions itself\) in \S*nginx\.conf:\d+/



=== TEST 9: nginx's sticky before socketio_sticky
--- skip_nginx: 2: < 1.29.6
--- http_config
    upstream backend {
        sticky learn create=$upstream_cookie_sid lookup=$cookie_sid zone=sess:1m;
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr/\[emerg\] .*"socketio_sticky" directive cannot be used with nginx's "sticky" in the same upstream \(socketio_sticky keeps sessions itself\) in \S*nginx\.conf:\d+/



=== TEST 10: sticky in another upstream is fine
--- skip_nginx: 4: < 1.29.6
--- http_config
    upstream other {
        sticky cookie srv_id;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://backend;
        add_header X-Status $socketio_sticky_status;
    }
--- request
GET /t?device_id=d1
--- response_body
A
--- response_headers
X-Status: device_id
--- no_error_log
[error]
[warn]
