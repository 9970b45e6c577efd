# Where the device_id is read from: every source kind, their order (the first non-empty value
# wins), percent-decoding, the 256-byte limit, and odd spacing or quoting.
#
# Every block has a single backend, so the request always lands there; what is checked is the
# key the module picked ($socketio_sticky_key, absent when there is none) and the status
# ($socketio_sticky_status: "device_id" with a key, "fallback" without).

use Test::Nginx::Socket 'no_plan';

repeat_each(1);

run_tests();

__DATA__

=== TEST 1: default source arg:device_id (case-insensitive name, first non-empty value, decoding)
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
--- pipelined_requests eval
[
    "GET /t?device_id=abc",
    "GET /t?DEVICE_ID=Up",
    "GET /t?device_id=&device_id=second",
    "GET /t?xdevice_id=1&device_id_x=2",
    "GET /t?a=1&device_id=%41%42c&b=2",
    "GET /t?device_id=a%2Bb+c",
    "GET /t?device_id=",
    "GET /t",
    "GET /t?device_id=100%",
    "GET /t?device_id=%zz%4",
    "GET /t?device_id==x",
    "GET /t?sid=s1&EIO=3",
]
--- response_headers eval
[
    "X-Sticky-Status: device_id\nX-Sticky-Key: abc",
    "X-Sticky-Status: device_id\nX-Sticky-Key: Up",
    "X-Sticky-Status: device_id\nX-Sticky-Key: second",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: device_id\nX-Sticky-Key: ABc",
    "X-Sticky-Status: device_id\nX-Sticky-Key: a+b+c",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: device_id\nX-Sticky-Key: 100%",
    "X-Sticky-Status: device_id\nX-Sticky-Key: %zz%4",
    "X-Sticky-Status: device_id\nX-Sticky-Key: =x",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
]
--- response_body eval
[("b1\n") x 12]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 2: the sid sources are parsed but do not route (no session table yet)
--- http_config
    upstream backend {
        socketio_sticky sid=arg:sid,cookie:io,path,header:X-Sid;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1\n";
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
        add_header X-Sticky-Key $socketio_sticky_key always;
    }
--- pipelined_requests eval
[
    "GET /socket.io/?EIO=4&transport=polling&sid=abc",
    "GET /socket.io/?EIO=4&transport=polling",
    "GET /socket.io/1/websocket/SID123",
    "GET /socket.io/?EIO=4&transport=polling",
    "GET /socket.io/?EIO=4&transport=polling&sid=abc&device_id=dev9",
]
--- more_headers eval
[
    "",
    "Cookie: io=cookie-sid",
    "",
    "X-Sid: header-sid",
    "",
]
--- response_headers eval
[
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: device_id\nX-Sticky-Key: dev9",
]
--- response_body eval
[("b1\n") x 5]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 3: arg:NAME sources are tried in the order of the list, not of the query
--- http_config
    upstream backend {
        socketio_sticky device_id=arg:d,arg:device_id;
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
[
    "GET /t?d=1&device_id=2",
    "GET /t?device_id=2&d=1",
    "GET /t?d=&device_id=2",
    "GET /t?device_id=2",
    "GET /t?D=3",
    "GET /t?dd=4&xd=5",
]
--- response_headers eval
[
    "X-Sticky-Status: device_id\nX-Sticky-Key: 1",
    "X-Sticky-Status: device_id\nX-Sticky-Key: 1",
    "X-Sticky-Status: device_id\nX-Sticky-Key: 2",
    "X-Sticky-Status: device_id\nX-Sticky-Key: 2",
    "X-Sticky-Status: device_id\nX-Sticky-Key: 3",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
]
--- response_body eval
[("b1\n") x 6]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 4: cookie:NAME with odd spacing, tabs, quotes, repeats and several Cookie headers
--- http_config
    upstream backend {
        socketio_sticky device_id=cookie:dev;
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
[("GET /t") x 16]
--- more_headers eval
[
    "Cookie: dev=abc",
    "Cookie: a=1; dev=abc; b=2",
    "Cookie: a=1;dev=abc;b=2",
    "Cookie: a=1 ;   dev  =   abc   ;b=2",
    "Cookie: a=1;\tdev\t=\tabc\t; b=2",
    "Cookie: dev=\"quoted\"",
    "Cookie: dev=\"\"; dev=next",
    "Cookie: dev=; dev=second",
    "Cookie: DEV=Upper",
    "Cookie: bdev=x; dev2=y",
    "Cookie: a=1\nCookie: dev=two",
    "Cookie: dev=a%3Db%20c",
    "Cookie: dev=a=b",
    "",
    "Cookie: dev",
    "Cookie: a=1; dev=first; dev=second",
]
--- response_headers eval
[
    "X-Sticky-Status: device_id\nX-Sticky-Key: abc",
    "X-Sticky-Status: device_id\nX-Sticky-Key: abc",
    "X-Sticky-Status: device_id\nX-Sticky-Key: abc",
    "X-Sticky-Status: device_id\nX-Sticky-Key: abc",
    "X-Sticky-Status: device_id\nX-Sticky-Key: abc",
    "X-Sticky-Status: device_id\nX-Sticky-Key: quoted",
    "X-Sticky-Status: device_id\nX-Sticky-Key: next",
    "X-Sticky-Status: device_id\nX-Sticky-Key: second",
    "X-Sticky-Status: device_id\nX-Sticky-Key: Upper",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: device_id\nX-Sticky-Key: two",
    "X-Sticky-Status: device_id\nX-Sticky-Key: a=b c",
    "X-Sticky-Status: device_id\nX-Sticky-Key: a=b",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: device_id\nX-Sticky-Key: first",
]
--- response_body eval
[("b1\n") x 16]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 5: header:NAME (case-insensitive name, padding, empty and repeated headers, decoding)
--- http_config
    upstream backend {
        socketio_sticky device_id=header:X-Device;
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
[("GET /t?device_id=not-a-source") x 9]
--- more_headers eval
[
    "X-Device: abc",
    "X-Device: padded   \t  ",
    "x-dEvIcE: mixed",
    "X-Device:",
    "X-Device:\nX-Device: second",
    "X-Device: a%20b%2F",
    "X-Device-Other: nope",
    "X-Device: first\nX-Device: second",
    "X-Device: in\tside",
]
--- response_headers eval
[
    "X-Sticky-Status: device_id\nX-Sticky-Key: abc",
    "X-Sticky-Status: device_id\nX-Sticky-Key: padded",
    "X-Sticky-Status: device_id\nX-Sticky-Key: mixed",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: device_id\nX-Sticky-Key: second",
    "X-Sticky-Status: device_id\nX-Sticky-Key: a b/",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: device_id\nX-Sticky-Key: first",
    "X-Sticky-Status: device_id\nX-Sticky-Key: in\tside",
]
--- response_body eval
[("b1\n") x 9]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 6: $variable sources ($http_, $arg_, $cookie_, a map), values percent-decoded
--- http_config
    map $arg_m $mapped_device {
        ""      "";
        default "m-$arg_m";
    }
    upstream backend {
        socketio_sticky device_id=$http_x_dev,$arg_d,$cookie_c,$mapped_device;
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
[
    "GET /t?d=arg&m=7",
    "GET /t?d=%41rg&m=7",
    "GET /t?m=7",
    "GET /t?m=7",
    "GET /t",
    "GET /t?d=&m=",
    "GET /t?d=arg",
]
--- more_headers eval
[
    "X-Dev: hdr\nCookie: c=ck",
    "Cookie: c=ck",
    "Cookie: c=ck%21",
    "",
    "",
    "X-Dev:\nCookie: c=",
    "X-Dev: a%20b",
]
--- response_headers eval
[
    "X-Sticky-Status: device_id\nX-Sticky-Key: hdr",
    "X-Sticky-Status: device_id\nX-Sticky-Key: Arg",
    "X-Sticky-Status: device_id\nX-Sticky-Key: ck!",
    "X-Sticky-Status: device_id\nX-Sticky-Key: m-7",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: device_id\nX-Sticky-Key: a b",
]
--- response_body eval
[("b1\n") x 7]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 7: uri:REGEX takes the first capture group of the decoded URI (decoded once only)
--- http_config
    upstream backend {
        socketio_sticky "device_id=uri:^/t/num/(\d*),uri:^/t/dev/([^/]+)/,arg:d";
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1\n";
    }
--- config
    location /t/ {
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
        add_header X-Sticky-Key $socketio_sticky_key always;
    }
--- pipelined_requests eval
[
    "GET /t/dev/abc/x?d=fb",
    "GET /t/dev/a%20b/x",
    "GET /t/dev/a%2541/x",
    "GET /t/num/123x/y?d=fb",
    "GET /t/num/x?d=fb",
    "GET /t/dev/abc?d=fb",
    "GET /t/other?d=fb",
    "GET /t/other",
]
--- response_headers eval
[
    "X-Sticky-Status: device_id\nX-Sticky-Key: abc",
    "X-Sticky-Status: device_id\nX-Sticky-Key: a b",
    "X-Sticky-Status: device_id\nX-Sticky-Key: a%41",
    "X-Sticky-Status: device_id\nX-Sticky-Key: 123",
    "X-Sticky-Status: device_id\nX-Sticky-Key: fb",
    "X-Sticky-Status: device_id\nX-Sticky-Key: fb",
    "X-Sticky-Status: device_id\nX-Sticky-Key: fb",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
]
--- response_body eval
[("b1\n") x 8]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 8: path: the sid of a Socket.IO 0.9 path /<resource>/1/<transport>/<sid>
--- http_config
    upstream backend {
        socketio_sticky device_id=path;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1\n";
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
        add_header X-Sticky-Key $socketio_sticky_key always;
    }
    location /app/ {
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
        add_header X-Sticky-Key $socketio_sticky_key always;
    }
--- pipelined_requests eval
[
    "GET /socket.io/1/websocket/SID123",
    "GET /socket.io/1/xhr-polling/abc/?t=1",
    "GET /socket.io/1/",
    "GET /socket.io/1/?t=123",
    "GET /socket.io/1/websocket/",
    "GET /socket.io/1/WEBSOCKET/upper",
    "GET /app/rt/1/jsonp-polling/S9",
    "GET /socket.io/1/websocket/a%20b",
    "GET /socket.io/1/websocket/a%2541",
    "GET /socket.io/?EIO=4&transport=polling&device_id=x",
]
--- response_headers eval
[
    "X-Sticky-Status: device_id\nX-Sticky-Key: SID123",
    "X-Sticky-Status: device_id\nX-Sticky-Key: abc",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: device_id\nX-Sticky-Key: S9",
    "X-Sticky-Status: device_id\nX-Sticky-Key: a b",
    "X-Sticky-Status: device_id\nX-Sticky-Key: a%41",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
]
--- response_body eval
[("b1\n") x 10]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 9: order across kinds: the first source with a non-empty value wins
--- http_config
    upstream backend {
        socketio_sticky "device_id=header:X-Device,cookie:dev,$arg_v,arg:device_id,path,uri:^/t/([^/]+)/";
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1\n";
    }
--- config
    location /t/ {
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
        add_header X-Sticky-Key $socketio_sticky_key always;
    }
--- pipelined_requests eval
[
    "GET /t/socket.io/1/websocket/P?v=v&device_id=a",
    "GET /t/socket.io/1/websocket/P?v=v&device_id=a",
    "GET /t/socket.io/1/websocket/P?v=v&device_id=a",
    "GET /t/socket.io/1/websocket/P?v=&device_id=a",
    "GET /t/socket.io/1/websocket/P?v=&device_id=",
    "GET /t/socket.io/1/?v=&device_id=",
    "GET /t/socket.io/1/websocket/P?v=v&device_id=a",
    "GET /t/x",
]
--- more_headers eval
[
    "X-Device: h\nCookie: dev=c",
    "Cookie: dev=c",
    "X-Device:\nCookie: dev=",
    "",
    "",
    "",
    "X-Device:    \nCookie: other=1; dev=c",
    "X-Device:\nCookie: dev=",
]
--- response_headers eval
[
    "X-Sticky-Status: device_id\nX-Sticky-Key: h",
    "X-Sticky-Status: device_id\nX-Sticky-Key: c",
    "X-Sticky-Status: device_id\nX-Sticky-Key: v",
    "X-Sticky-Status: device_id\nX-Sticky-Key: a",
    "X-Sticky-Status: device_id\nX-Sticky-Key: P",
    "X-Sticky-Status: device_id\nX-Sticky-Key: socket.io",
    "X-Sticky-Status: device_id\nX-Sticky-Key: c",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
]
--- response_body eval
[("b1\n") x 8]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 10: values over 256 bytes after decoding are ignored and the next source is used
--- http_config
    upstream backend {
        socketio_sticky device_id=arg:a,header:X-Long,cookie:long,$http_x_var,arg:b;
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
[
    "GET /t?a=" . ("a" x 256) . "&b=ok",
    "GET /t?a=" . ("a" x 257) . "&b=ok",
    "GET /t?a=" . ("%41" x 256) . "&b=ok",
    "GET /t?a=" . ("%41" x 257) . "&b=ok",
    "GET /t?a=" . ("7" x 4000) . "&b=ok",
    "GET /t?b=ok",
    "GET /t?b=ok",
    "GET /t?b=ok",
    "GET /t?a=" . ("a" x 257),
    "GET /t?b=" . ("b" x 300),
]
--- more_headers eval
[
    "",
    "",
    "",
    "",
    "",
    "X-Long: " . ("x" x 300),
    "Cookie: long=" . ("y" x 257),
    "X-Var: " . ("%7A" x 257),
    "",
    "",
]
--- response_headers eval
[
    "X-Sticky-Status: device_id\nX-Sticky-Key: " . ("a" x 256),
    "X-Sticky-Status: device_id\nX-Sticky-Key: ok",
    "X-Sticky-Status: device_id\nX-Sticky-Key: " . ("A" x 256),
    "X-Sticky-Status: device_id\nX-Sticky-Key: ok",
    "X-Sticky-Status: device_id\nX-Sticky-Key: ok",
    "X-Sticky-Status: device_id\nX-Sticky-Key: ok",
    "X-Sticky-Status: device_id\nX-Sticky-Key: ok",
    "X-Sticky-Status: device_id\nX-Sticky-Key: ok",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
]
--- response_body eval
[("b1\n") x 10]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 11: a 256-byte header, cookie and variable value is still used
--- http_config
    upstream backend {
        socketio_sticky device_id=header:X-Long,cookie:long,$http_x_var;
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
[("GET /t") x 3]
--- more_headers eval
[
    "X-Long: " . ("x" x 256),
    "Cookie: long=" . ("y" x 256),
    "X-Var: " . ("%7A" x 256),
]
--- response_headers eval
[
    "X-Sticky-Status: device_id\nX-Sticky-Key: " . ("x" x 256),
    "X-Sticky-Status: device_id\nX-Sticky-Key: " . ("y" x 256),
    "X-Sticky-Status: device_id\nX-Sticky-Key: " . ("z" x 256),
]
--- response_body eval
[("b1\n") x 3]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 12: empty values of every kind are skipped
--- http_config
    upstream backend {
        socketio_sticky device_id=arg:a,cookie:c,header:X-H,$http_x_v,path;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        return 200 "b1\n";
    }
--- config
    location /t/ {
        proxy_pass http://backend;
        add_header X-Sticky-Status $socketio_sticky_status always;
        add_header X-Sticky-Key $socketio_sticky_key always;
    }
--- pipelined_requests eval
[
    "GET /t/x?a=",
    "GET /t/x?a=",
    "GET /t/io/1/websocket/S?a=",
    "GET /t/io/1/websocket/?a=",
]
--- more_headers eval
[
    "Cookie: c=\nX-H:\nX-V: v",
    "Cookie: c=\"\"\nX-H: \t \nX-V: v",
    "Cookie: c=\nX-H:\nX-V:",
    "Cookie: c=\nX-H:\nX-V:",
]
--- response_headers eval
[
    "X-Sticky-Status: device_id\nX-Sticky-Key: v",
    "X-Sticky-Status: device_id\nX-Sticky-Key: v",
    "X-Sticky-Status: device_id\nX-Sticky-Key: S",
    "X-Sticky-Status: fallback\n!X-Sticky-Key",
]
--- response_body eval
[("b1\n") x 4]
--- no_error_log
[error]
[alert]
[crit]
