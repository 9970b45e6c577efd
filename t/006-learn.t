# Learning session ids from handshake responses: every handshake form (Engine.IO 4 open
# packet, Engine.IO 3 text and binary payload framing, JSONP, the io cookie, Socket.IO 0.9),
# bodies split across buffers, idle expiry, LRU eviction, reloads, unknown ids, colliding ids,
# compressed handshakes, $socketio_sticky_status "new" and "learned", and no session id in the
# error log.
#
# Mock backends are nginx servers on four ports fixed for the whole file
# ($TEST_NGINX_LEARN_PORT_1..4), so that a backend keeps its identity ("127.0.0.1:PORT") from one
# block to the next. A backend answers a handshake (mostly: a request without a sid argument)
# with a fixed body written by --- user_files (it names a fixed sid: backend A mints "...A-...",
# B "...B-..."), and any other request with its name followed by an SSI command; the proxying
# server has `ssi on`, so the body of a follow-up reads e.g. "A learned": which backend took it,
# and $socketio_sticky_status of the request that proxied it.
#
# The handshakes of a block are one request for an SSI page (one `include virtual` per
# handshake, one after another), so that the access log (`log_subrequest on`, format
# "URI STATUS STICKY_STATUS") shows every handshake with status "new" once the first response
# of the block has arrived (Test::Nginx checks --- access_log after every response). Round
# robin gives the two handshakes of a page to the two backends, in either order.
#
# The file runs in HUP mode (use_hup()): nginx is started once and every block reloads it, so
# the session tables (shared memory zones) live on from block to block. That is what the expiry
# blocks (a block without --- config keeps nginx as it is, --- wait sleeps) and the reload blocks
# rely on; the other blocks use session ids of their own. Blocks run in order (no_shuffle).
#
# The error log is read at level info (session ids must not appear above debug level; nginx's
# own debug lines would show request arguments).

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use StickyPages;
use EngineIOFrames;
use IO::Compress::Gzip qw(gzip $GzipError);
use File::Temp ();

repeat_each(1);
no_shuffle();
use_hup();
log_level('info');

# Four free ports, the same for every block of this file.
::fixed_ports('TEST_NGINX_LEARN_PORT_', 4);

# Engine.IO 3 text payload framing: "<length>:<packet>".
sub ::text_frame {
    my $p = shift;
    return length($p) . ":$p";
}

# A chunked HTTP/1.1 response whose body is sent as the given chunks.
sub ::chunked {
    return ["HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\n"
            . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            (map { sprintf("%x\r\n", length) . "$_\r\n" } @_), "0\r\n\r\n"];
}

# The two handshake bodies of a page, in either order.
sub ::either {
    my ($x, $y) = @_;
    return qr/\A(?:\Q$x$y\E|\Q$y$x\E)\z/;
}

# An SSI page with N (default 2) handshakes "URI&t=h1", "URI&t=h2", ...
sub ::hs_page {
    my ($uri, $n) = @_;
    return ::page(map { "$uri&t=h$_" } 1 .. ($n || 2));
}

# Access log lines of the handshakes of ::hs_page, each with status "new".
sub ::hs_logged {
    my ($uri, $status, $n) = @_;
    return [map { qr/^\Q$uri&t=h$_\E 200 \Q$status\E$/ } 1 .. ($n || 2)];
}

# The LRU block's pages: page P (1..3) holds handshakes n = 1000 (P - 1) + 1 .. 1000 P, and
# backend M answers each with the sid "lru-NNNN".
sub ::lru_numbers {
    my $p = shift;
    return map { sprintf "%04d", $_ } ($p - 1) * 1000 + 1 .. $p * 1000;
}

sub ::lru_page {
    return ::page(map { "/m/?EIO=4&transport=polling&n=$_" } ::lru_numbers(shift));
}

sub ::lru_body {
    return CORE::join('', map { qq{0{"sid":"lru-$_","upgrades":[]}} } ::lru_numbers(shift));
}

# The state file of the reload blocks (TEST 22-24), in a directory of this file's own.
$ENV{TEST_NGINX_LEARN_STATE_DIR} = File::Temp::tempdir('sticky-learn-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# TEST 22-24: an upstream whose table is a state file, and backends that answer a request
# without a sid with their handshake (files sfA, sfB), any other with their name and $report.
our $StateReload = <<'_EOC_';
    upstream backend_sf {
        socketio_sticky zone=sf:64k state=$TEST_NGINX_LEARN_STATE_DIR/sf.sticky;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /sfA last;
            }
            return 200 "A $report\n";
        }
        location = /sfA { }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /sfB last;
            }
            return 200 "B $report\n";
        }
        location = /sfB { }
    }
_EOC_

# Handshake bodies (the sids are in the style of engine.io's base64id).
our %HS = (
    v4A => '0{"sid":"v4A-lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}',
    # key order and whitespace are free
    v4B => qq{0{ "upgrades" : ["websocket"], "pingInterval":25000 ,\n "sid": "v4B-Kx2Ut0yX_QpSn5pAAAB", "pingTimeout":20000,"maxPayload":1000000}},
    t3A => ::text_frame('0{"sid":"t3A-Wl8lY0pS3mV1AAAA","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}') . '2:40',
    t3B => ::text_frame('0{"sid":"t3B-Qz4Rk9XcE2bHAAAB","upgrades":[],"pingInterval":25000,"pingTimeout":5000}'),
    b3A => ::binary_frame('0{"sid":"b3A-Hn5Tq8WzL3xPAAAA","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}') . ::binary_frame('40'),
    b3B => ::binary_frame('0{"upgrades":[],"sid":"b3B-Rt1Yb6MkS0dJAAAB","pingInterval":25000,"pingTimeout":5000}'),
    jpA => ::jsonp(0, ::text_frame('0{"sid":"jpA-Nc7Vb1ZtY5wQAAAA","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}') . '2:40'),
    jpB => ::jsonp(1, '0{"sid":"jpB-Ge3Xf9KsU2vMAAAB","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}' . "\x1e" . '40'),
    l9A => 'l9A-4d4f185e96a7b:60:60:websocket,htmlfile,xhr-polling,jsonp-polling',
    l9B => 'io.j[0]("l9B-Kx2Ut0yX_QpSn5p-AAAB:60:60:websocket,xhr-polling,jsonp-polling");',
    emA => '0{"sid":"emA-Vd2Lp7QxC4tRAAAA","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
    emB => '0{"sid":"emB-Ju9Wk3HnB8yGAAAB","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
    nh  => '0{"sid":"nh-Ab3Cd5Ef7Gh9AAAA","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
    exA => '0{"sid":"exA-Mm4Nn5Oo6Pp7AAAA","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
    exB => '0{"sid":"exB-Qq8Rr9Ss0Tt1AAAB","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
    rlA => '0{"sid":"rlA-Uu2Vv3Ww4Xx5AAAA","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
    rlB => '0{"sid":"rlB-Yy6Zz7Aa8Bb9AAAB","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
    sfA => '0{"sid":"sfA-Ht4Ju6Ki8Lo0AAAA","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
    sfB => '0{"sid":"sfB-Mp2Nq4Or6Ps8AAAB","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
    gzA => '0{"sid":"gzA-Cc1Dd2Ee3Ff4AAAA","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
    plB => '0{"sid":"plB-Gg5Hh6Ii7Jj8AAAB","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
    slS => '0{"upgrades":["websocket"],"sid":"slS-Kk9Ll0Mm1Nn2Oo3Pp4Qq5Rr6Ss7","pingInterval":25000,"pingTimeout":20000}',
);

# The gzip-compressed handshake of the Content-Encoding block, compressed once.
our $GZ_A;
gzip(\$HS{gzA} => \$GZ_A) or die "gzip failed: $GzipError\n";

# Common to every block with a --- config: no access log but the front server's, whose lines
# read "URI STATUS STICKY_STATUS" (also for subrequests); $report is the SSI command that the
# proxying server (ssi on) turns into the request's $socketio_sticky_status.
my $CommonHttp = <<'_EOC_';
    access_log off;
    log_subrequest on;
    log_format learn '$uri$is_args$args $status $socketio_sticky_status';
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" -->';
    }
_EOC_

my $CommonServer = <<'_EOC_';
    access_log logs/access.log learn;
    ssi on;
    ssi_types *;
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    return unless defined $block->config;
    $block->set_value(http_config => $CommonHttp . (defined $block->http_config
                                                    ? $block->http_config : ''));
    $block->set_value(config => $CommonServer . $block->config);
});

run_tests();

__DATA__

=== TEST 1: Engine.IO 4 open packet (any key order): every follow-up reaches the minting backend, learned
--- http_config
    upstream backend_v4 {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /v4A last;
            }
            return 200 "A $report\n";
        }
        location = /v4A { }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /v4B last;
            }
            return 200 "B $report\n";
        }
        location = /v4B { }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_v4;
    }
--- user_files eval
[["hs.html", ::hs_page("/socket.io/?EIO=4&transport=polling")],
 ["v4A", $::HS{v4A}], ["v4B", $::HS{v4B}]]
--- request eval
["GET /hs.html",
 (map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=v4A-lv_VI97HAXpY6yYWAAAC" } 1 .. 3),
 "GET /socket.io/?EIO=4&transport=websocket&sid=v4A-lv_VI97HAXpY6yYWAAAC",
 (map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=v4B-Kx2Ut0yX_QpSn5pAAAB" } 1 .. 3),
 "GET /socket.io/?EIO=4&transport=websocket&sid=v4B-Kx2Ut0yX_QpSn5pAAAB"]
--- response_body eval
[::either($::HS{v4A}, $::HS{v4B}), ("A learned\n") x 4, ("B learned\n") x 4]
--- access_log eval
::hs_logged("/socket.io/?EIO=4&transport=polling", "new")
--- no_access_log
fallback
--- no_error_log
[error]
[warn]
v4A-lv_VI97HAXpY6yYWAAAC
v4B-Kx2Ut0yX_QpSn5pAAAB



=== TEST 2: Engine.IO 3 text payload framing ("96:0{...}2:40" and a lone packet)
--- http_config
    upstream backend_t3 {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /t3A last;
            }
            return 200 "A $report\n";
        }
        location = /t3A { }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /t3B last;
            }
            return 200 "B $report\n";
        }
        location = /t3B { }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_t3;
    }
--- user_files eval
[["hs.html", ::hs_page("/socket.io/?EIO=3&transport=polling")],
 ["t3A", $::HS{t3A}], ["t3B", $::HS{t3B}]]
--- request eval
["GET /hs.html",
 (map { "GET /socket.io/?EIO=3&transport=polling&t=$_&sid=t3A-Wl8lY0pS3mV1AAAA" } 1 .. 3),
 (map { "GET /socket.io/?EIO=3&transport=polling&t=$_&sid=t3B-Qz4Rk9XcE2bHAAAB" } 1 .. 3)]
--- response_body eval
[::either($::HS{t3A}, $::HS{t3B}), ("A learned\n") x 3, ("B learned\n") x 3]
--- access_log eval
::hs_logged("/socket.io/?EIO=3&transport=polling", "new")
--- no_access_log
fallback
--- no_error_log
[error]
[warn]
t3A-Wl8lY0pS3mV1AAAA
t3B-Qz4Rk9XcE2bHAAAB



=== TEST 3: Engine.IO 3 binary payload framing (0x00, length digits as bytes, 0xff, packet)
--- http_config
    upstream backend_b3 {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /b3A last;
            }
            return 200 "A $report\n";
        }
        location = /b3A {
            default_type application/octet-stream;
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /b3B last;
            }
            return 200 "B $report\n";
        }
        location = /b3B {
            default_type application/octet-stream;
        }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_b3;
    }
--- user_files eval
[["hs.html", ::hs_page("/socket.io/?EIO=3&transport=polling&b64=0")],
 ["b3A", $::HS{b3A}], ["b3B", $::HS{b3B}]]
--- request eval
["GET /hs.html",
 (map { "GET /socket.io/?EIO=3&transport=polling&t=$_&sid=b3A-Hn5Tq8WzL3xPAAAA" } 1 .. 3),
 (map { "GET /socket.io/?EIO=3&transport=polling&t=$_&sid=b3B-Rt1Yb6MkS0dJAAAB" } 1 .. 3)]
--- response_body eval
[::either($::HS{b3A}, $::HS{b3B}), ("A learned\n") x 3, ("B learned\n") x 3]
--- access_log eval
::hs_logged("/socket.io/?EIO=3&transport=polling&b64=0", "new")
--- no_access_log
fallback
--- no_error_log
[error]
[warn]
b3A-Hn5Tq8WzL3xPAAAA
b3B-Rt1Yb6MkS0dJAAAB



=== TEST 4: JSONP polling (j=N): Engine.IO 3 ___eio[0]("96:0{\"sid\":...}2:40"); and Engine.IO 4
--- http_config
    upstream backend_jp {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /jpA last;
            }
            return 200 "A $report\n";
        }
        location = /jpA {
            default_type text/javascript;
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /jpB last;
            }
            return 200 "B $report\n";
        }
        location = /jpB {
            default_type text/javascript;
        }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_jp;
    }
--- user_files eval
[["hs.html", ::hs_page("/socket.io/?EIO=3&transport=polling&j=0")],
 ["jpA", $::HS{jpA}], ["jpB", $::HS{jpB}]]
--- request eval
["GET /hs.html",
 (map { "GET /socket.io/?EIO=3&transport=polling&j=0&t=$_&sid=jpA-Nc7Vb1ZtY5wQAAAA" } 1 .. 3),
 (map { "GET /socket.io/?EIO=3&transport=polling&j=0&t=$_&sid=jpB-Ge3Xf9KsU2vMAAAB" } 1 .. 3)]
--- response_body eval
[::either($::HS{jpA}, $::HS{jpB}), ("A learned\n") x 3, ("B learned\n") x 3]
--- access_log eval
::hs_logged("/socket.io/?EIO=3&transport=polling&j=0", "new")
--- no_access_log
fallback
--- no_error_log
[error]
[warn]
jpA-Nc7Vb1ZtY5wQAAAA
jpB-Ge3Xf9KsU2vMAAAB



=== TEST 5: Set-Cookie: io=SID with a body that is no handshake form; follow-ups by cookie or ?sid=
--- http_config
    map "$http_cookie$arg_sid" $no_session {
        ""      1;
        default 0;
    }
    upstream backend_ck {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        location / {
            if ($no_session) {
                add_header Set-Cookie "io=ckA-Pq7h3LmV0nRtAAAA; Path=/; HttpOnly";
                return 200 "ok";
            }
            return 200 "A $report\n";
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        location / {
            if ($no_session) {
                add_header Set-Cookie "lang=en; Path=/";
                add_header Set-Cookie "io=ckB-Zx5Cv8BnM1aSAAAB; Path=/; HttpOnly; SameSite=Lax";
                return 200 '{"not":"an open packet"}';
            }
            return 200 "B $report\n";
        }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_ck;
    }
--- user_files eval
[["hs.html", ::hs_page("/socket.io/?EIO=3&transport=polling")]]
--- request eval
["GET /hs.html",
 (map { "GET /socket.io/?transport=polling&t=$_" } 1 .. 3),
 "GET /socket.io/?EIO=3&transport=polling&t=4&sid=ckA-Pq7h3LmV0nRtAAAA",
 (map { "GET /socket.io/?transport=polling&t=$_" } 1 .. 3),
 "GET /socket.io/?EIO=3&transport=polling&t=4&sid=ckB-Zx5Cv8BnM1aSAAAB"]
--- more_headers eval
["",
 "Cookie: io=ckA-Pq7h3LmV0nRtAAAA", "Cookie: lang=en; io=ckA-Pq7h3LmV0nRtAAAA",
 "Cookie: io=\"ckA-Pq7h3LmV0nRtAAAA\"; x=1", "",
 "Cookie: io=ckB-Zx5Cv8BnM1aSAAAB", "Cookie: io = ckB-Zx5Cv8BnM1aSAAAB ; lang=en",
 "Cookie: lang=en\nCookie: io=ckB-Zx5Cv8BnM1aSAAAB", ""]
--- response_body eval
[qr/\A(?:ok\{"not":"an open packet"\}|\{"not":"an open packet"\}ok)\z/,
 ("A learned\n") x 4, ("B learned\n") x 4]
--- access_log eval
::hs_logged("/socket.io/?EIO=3&transport=polling", "new")
--- no_access_log
fallback
--- no_error_log
[error]
[warn]
ckA-Pq7h3LmV0nRtAAAA
ckB-Zx5Cv8BnM1aSAAAB



=== TEST 6: the Set-Cookie name learned from is the cookie: source of sid= (sess here, not io)
--- http_config
    map "$http_cookie$arg_sid" $no_session {
        ""      1;
        default 0;
    }
    upstream backend_sess {
        socketio_sticky sid=arg:sid,cookie:sess;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        location / {
            if ($no_session) {
                add_header Set-Cookie "io=ioA-Fw4Gx5Hy6Iz7AAAA; Path=/";
                add_header Set-Cookie "sess=ssA-Jb8Kc9Ld0Me1AAAA; Path=/";
                return 200 "ok";
            }
            return 200 "A $report\n";
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        location / {
            if ($no_session) {
                add_header Set-Cookie "io=ioB-Nf2Og3Ph4Qi5AAAB; Path=/";
                add_header Set-Cookie "sess=ssB-Rj6Sk7Tl8Um9AAAB; Path=/";
                return 200 "ok";
            }
            return 200 "B $report\n";
        }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_sess;
    }
--- user_files eval
[["hs.html", ::hs_page("/socket.io/?EIO=3&transport=polling")]]
--- request eval
["GET /hs.html",
 (map { "GET /socket.io/?transport=polling&t=$_" } 1 .. 2),
 "GET /socket.io/?EIO=3&transport=polling&sid=ssA-Jb8Kc9Ld0Me1AAAA",
 (map { "GET /socket.io/?transport=polling&t=$_" } 1 .. 2),
 "GET /socket.io/?EIO=3&transport=polling&sid=ssB-Rj6Sk7Tl8Um9AAAB",
 "GET /socket.io/?EIO=3&transport=polling&sid=ioA-Fw4Gx5Hy6Iz7AAAA",
 "GET /socket.io/?EIO=3&transport=polling&sid=ioB-Nf2Og3Ph4Qi5AAAB"]
--- more_headers eval
["",
 "Cookie: sess=ssA-Jb8Kc9Ld0Me1AAAA", "Cookie: io=ioB-Nf2Og3Ph4Qi5AAAB; sess=ssA-Jb8Kc9Ld0Me1AAAA", "",
 "Cookie: sess=ssB-Rj6Sk7Tl8Um9AAAB", "Cookie: io=ioA-Fw4Gx5Hy6Iz7AAAA; sess=ssB-Rj6Sk7Tl8Um9AAAB", "",
 "", ""]
--- response_body eval
["okok", ("A learned\n") x 3, ("B learned\n") x 3,
 qr/\A[AB] fallback\n\z/, qr/\A[AB] fallback\n\z/]
--- access_log eval
::hs_logged("/socket.io/?EIO=3&transport=polling", "new")
--- no_error_log
[error]
[warn]
ssA-Jb8Kc9Ld0Me1AAAA
ssB-Rj6Sk7Tl8Um9AAAB



=== TEST 7: Socket.IO 0.9: handshake /socket.io/1/ (plain and io.j[N]("...") JSONP), follow-ups by path
--- http_config
    upstream backend_l9 {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        root html;
        location = /socket.io/1/ {
            rewrite ^ /l9A last;
        }
        location / {
            return 200 "A $report\n";
        }
        location = /l9A { }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        root html;
        location = /socket.io/1/ {
            rewrite ^ /l9B last;
        }
        location / {
            return 200 "B $report\n";
        }
        location = /l9B { }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_l9;
    }
--- user_files eval
[["hs.html", ::hs_page("/socket.io/1/?x=1")],
 ["l9A", $::HS{l9A}], ["l9B", $::HS{l9B}]]
--- request eval
["GET /hs.html",
 "GET /socket.io/1/xhr-polling/l9A-4d4f185e96a7b?t=1",
 "POST /socket.io/1/xhr-polling/l9A-4d4f185e96a7b?t=2\n5:::{}",
 "GET /socket.io/1/websocket/l9A-4d4f185e96a7b",
 "GET /socket.io/1/xhr-polling/l9B-Kx2Ut0yX_QpSn5p-AAAB?t=1",
 "GET /socket.io/1/jsonp-polling/l9B-Kx2Ut0yX_QpSn5p-AAAB?t=2&i=0",
 "GET /socket.io/1/websocket/l9B-Kx2Ut0yX_QpSn5p-AAAB"]
--- response_body eval
[::either($::HS{l9A}, $::HS{l9B}), ("A learned\n") x 3, ("B learned\n") x 3]
--- access_log eval
::hs_logged("/socket.io/1/?x=1", "new")
--- no_access_log
fallback
--- no_error_log
[error]
[warn]
l9A-4d4f185e96a7b
l9B-Kx2Ut0yX_QpSn5p-AAAB



=== TEST 8: an open packet split across chunks (each its own buffer): learned; two upstreams share zone=split
The mock backend (port 4) serves one connection, the handshake, and then accepts but never
answers, so a follow-up that goes to it times out (504) with $upstream_addr naming port 4;
round robin would give it to the other server (weight 50). (The timeouts are logged by nginx
with the request line, sid included: no check for the sid in the error log here.)
--- http_config
    upstream split_hs {
        socketio_sticky zone=split:1m;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_4;
    }
    upstream split_all {
        socketio_sticky zone=split;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2 weight=50;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_4 max_fails=0;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        location / {
            return 200 "B $report\n";
        }
    }
--- config
    location /hs/ {
        proxy_pass http://split_hs/socket.io/;
        proxy_http_version 1.1;
    }
    location /socket.io/ {
        proxy_pass http://split_all;
        proxy_next_upstream off;
        proxy_read_timeout 500ms;
        add_header X-Upstream $upstream_addr always;
        add_header X-Status $socketio_sticky_status always;
    }
--- tcp_listen: $TEST_NGINX_LEARN_PORT_4
--- tcp_reply eval
::chunked('0', '{"si', 'd":"chk-W', 'm2Xn3Yo4Zp', '5AAAC","upgrades":[],',
          '"pingInterval":25000,"pingTimeout":20000}')
--- request eval
["GET /hs/?EIO=4&transport=polling",
 (map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=chk-Wm2Xn3Yo4Zp5AAAC" } 1 .. 3),
 "GET /socket.io/?EIO=4&transport=polling&sid=chk-unknown"]
--- error_code eval
[200, 504, 504, 504, 200]
--- response_headers eval
["",
 ("X-Upstream: 127.0.0.1:$ENV{TEST_NGINX_LEARN_PORT_4}\nX-Status: learned") x 3,
 "X-Upstream: 127.0.0.1:$ENV{TEST_NGINX_LEARN_PORT_2}\nX-Status: fallback"]
--- response_body eval
['0{"sid":"chk-Wm2Xn3Yo4Zp5AAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
 (qr/504 Gateway Time-out/) x 3,
 "B fallback\n"]
--- access_log eval
[qr{^/hs/\?EIO=4&transport=polling 200 new$}]
--- timeout: 10
--- no_error_log
[warn]



=== TEST 9: a handshake body that arrives in two parts half a second apart (proxy_buffering off): learned
Backend S sends its open packet through SSI with a pause in the middle of the sid: two
includes of a location rate limited to 2 requests a second (the second one waits 0.5s).
--- http_config
    limit_req_zone $server_port zone=pause:1m rate=2r/s;
    upstream slow_hs {
        socketio_sticky zone=slow:1m;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_3;
    }
    upstream slow_all {
        socketio_sticky zone=slow;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2 weight=50;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_3;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_3;
        root html;
        postpone_output 0;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /slS last;
            }
            return 200 "S $report\n";
        }
        location = /slS {
            ssi on;
            ssi_types *;
        }
        location = /pause {
            limit_req zone=pause burst=10;
            limit_req_log_level notice;
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        location / {
            return 200 "B $report\n";
        }
    }
--- config
    location /hs/ {
        proxy_pass http://slow_hs/socket.io/;
        proxy_buffering off;
    }
    location /socket.io/ {
        proxy_pass http://slow_all;
    }
--- user_files eval
(my $s = $::HS{slS}) =~ s/(Mm1)/<!--# include virtual="\/pause" --><!--# include virtual="\/pause" -->$1/ or die;
[["slS", $s], ["pause", ""]]
--- request eval
["GET /hs/?EIO=4&transport=polling",
 (map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=slS-Kk9Ll0Mm1Nn2Oo3Pp4Qq5Rr6Ss7" } 1 .. 3)]
--- response_body eval
[$::HS{slS}, ("S learned\n") x 3]
--- access_log eval
[qr{^/hs/\?EIO=4&transport=polling 200 new$}]
--- timeout: 10
--- no_error_log
[error]
[warn]
slS-Kk9Ll0Mm1Nn2Oo3Pp4Qq5Rr6Ss7



=== TEST 10: not learned: unknown sids fall through (round robin, or device_id), non-handshake and non-200 responses teach nothing; an empty sid= is a handshake
--- http_config
    upstream backend_unk {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        root html;
        location / {
            if ($arg_t ~ "^h") {
                rewrite ^ /emA last;
            }
            return 200 "A $report\n";
        }
        location = /emA { }
        location /nonhs/ {
            rewrite ^ /nh last;
        }
        location /bad/ {
            return 400 '0{"sid":"bad-Xe4Yf5Zg6Ah7AAAA","upgrades":[]}';
        }
        location = /nh { }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        root html;
        location / {
            if ($arg_t ~ "^h") {
                rewrite ^ /emB last;
            }
            return 200 "B $report\n";
        }
        location = /emB { }
        location /nonhs/ {
            rewrite ^ /nh last;
        }
        location /bad/ {
            return 400 '0{"sid":"bad-Xe4Yf5Zg6Ah7AAAA","upgrades":[]}';
        }
        location = /nh { }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_unk;
    }
    location /nonhs/ {
        proxy_pass http://backend_unk;
    }
    location /bad/ {
        proxy_pass http://backend_unk;
    }
--- user_files eval
[["hs.html", ::page("/socket.io/?EIO=4&transport=polling&sid=&t=h1",
                    "/socket.io/?EIO=4&transport=polling&sid=&t=h2",
                    "/nonhs/?EIO=4&transport=polling&sid=other1",
                    "/nonhs/?EIO=4&transport=polling&sid=other2",
                    "/bad/?EIO=4&transport=polling&t=b1",
                    "/bad/?EIO=4&transport=polling&t=b2")],
 ["emA", $::HS{emA}], ["emB", $::HS{emB}], ["nh", $::HS{nh}]]
--- request eval
["GET /hs.html",
 "GET /socket.io/?EIO=4&transport=polling&sid=emA-Vd2Lp7QxC4tRAAAA",
 "GET /socket.io/?EIO=4&transport=polling&sid=emB-Ju9Wk3HnB8yGAAAB",
 "GET /socket.io/?EIO=4&transport=polling&t=1&sid=nh-Ab3Cd5Ef7Gh9AAAA",
 "GET /socket.io/?EIO=4&transport=polling&t=2&sid=nh-Ab3Cd5Ef7Gh9AAAA",
 "GET /socket.io/?EIO=4&transport=polling&t=1&sid=bad-Xe4Yf5Zg6Ah7AAAA",
 "GET /socket.io/?EIO=4&transport=polling&t=2&sid=bad-Xe4Yf5Zg6Ah7AAAA",
 "GET /socket.io/?EIO=4&transport=polling&sid=never-minted-AAAA",
 "GET /socket.io/1/xhr-polling/never-minted-BBBB",
 "GET /socket.io/?EIO=4&transport=polling&sid=never-minted-CCCC&device_id=dev-42",
 "GET /socket.io/?EIO=4&transport=polling&sid=never-minted-CCCC&device_id=dev-42",
 "GET /socket.io/?transport=polling"]
--- more_headers eval
[("") x 11, "Cookie: io=never-minted-DDDD"]
--- response_body eval
[qr/\A(?:\Q$::HS{emA}$::HS{emB}\E|\Q$::HS{emB}$::HS{emA}\E)(?:\Q$::HS{nh}\E){2}(?:\Q0{"sid":"bad-Xe4Yf5Zg6Ah7AAAA","upgrades":[]}\E){2}\z/,
 "A learned\n", "B learned\n",
 (qr/\A[AB] fallback\n\z/) x 6,
 qr/\A([AB]) device_id\n\z/, qr/\A([AB]) device_id\n\z/,
 qr/\A[AB] fallback\n\z/]
--- access_log eval
[qr{^/socket\.io/\?EIO=4&transport=polling&sid=&t=h1 200 new$},
 qr{^/socket\.io/\?EIO=4&transport=polling&sid=&t=h2 200 new$},
 qr{^/nonhs/\?EIO=4&transport=polling&sid=other1 200 fallback$},
 qr{^/bad/\?EIO=4&transport=polling&t=b1 400 fallback$}]
--- no_access_log eval
[qr{^/(?:nonhs|bad)/.* new$}]
--- no_error_log
[warn]
emA-Vd2Lp7QxC4tRAAAA
nh-Ab3Cd5Ef7Gh9AAAA
bad-Xe4Yf5Zg6Ah7AAAA
never-minted



=== TEST 11: two backends mint the same sid: the newest wins, one warning a minute, without the sid
--- http_config
    upstream backend_dup {
        socketio_sticky zone=dup:64k;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        location / {
            if ($arg_sid = "") {
                return 200 '0{"sid":"dup-Lo1Mp2Nq3Or4AAAA","by":"A","upgrades":[]}';
            }
            return 200 "A $report\n";
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        location / {
            if ($arg_sid = "") {
                return 200 '0{"sid":"dup-Lo1Mp2Nq3Or4AAAA","by":"B","upgrades":[]}';
            }
            return 200 "B $report\n";
        }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_dup;
    }
--- user_files eval
[["p.html", ::page((map { "/socket.io/?EIO=4&transport=polling&t=h$_" } 1 .. 3),
                   (map { "/socket.io/?EIO=4&transport=polling&sid=dup-Lo1Mp2Nq3Or4AAAA&t=$_" } 1 .. 4))]]
--- request
GET /p.html
--- response_body_like eval
qr/\A(?=.*"by":"A")(?=.*"by":"B")(?:0\{"sid":"dup-Lo1Mp2Nq3Or4AAAA","by":"[AB]","upgrades":\[\]\}){2}0\{"sid":"dup-Lo1Mp2Nq3Or4AAAA","by":"([AB])","upgrades":\[\]\}(?:\1 learned\n){4}\z/s
--- grep_error_log: two backends minted the same session id
--- grep_error_log_out
two backends minted the same session id
--- error_log eval
qr/\[warn\] .*socketio_sticky: two backends minted the same session id, the newest wins \(zone "dup", \d+ so far\)/
--- no_error_log
[error]
dup-Lo1Mp2Nq3Or4AAAA



=== TEST 12: a gzip-encoded handshake is not learned and passes byte for byte; the plain one is
--- http_config
    upstream gz_hs {
        socketio_sticky zone=gz:1m;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
    }
    upstream plain_hs {
        socketio_sticky zone=gz;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    upstream gz_all {
        socketio_sticky zone=gz;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /gzA last;
            }
            return 200 "A $report\n";
        }
        location = /gzA {
            add_header Content-Encoding gzip;
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /plB last;
            }
            return 200 "B $report\n";
        }
        location = /plB { }
    }
--- config
    location /gz/ {
        proxy_pass http://gz_hs/socket.io/;
    }
    location /plain/ {
        proxy_pass http://plain_hs/socket.io/;
    }
    location /socket.io/ {
        proxy_pass http://gz_all;
    }
--- user_files eval
[["gzA", $::GZ_A], ["plB", $::HS{plB}]]
--- request eval
["GET /gz/?EIO=4&transport=polling",
 "GET /plain/?EIO=4&transport=polling",
 (map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=gzA-Cc1Dd2Ee3Ff4AAAA" } 1 .. 4),
 "GET /socket.io/?EIO=4&transport=polling&sid=plB-Gg5Hh6Ii7Jj8AAAB"]
--- more_headers eval
[("Accept-Encoding: gzip") x 7]
--- response_headers eval
["Content-Encoding: gzip", "!Content-Encoding", ("") x 5]
--- response_body eval
[$::GZ_A, $::HS{plB}, (qr/\A[AB] fallback\n\z/) x 4, "B learned\n"]
--- access_log eval
[qr{^/gz/\?EIO=4&transport=polling 200 fallback$}]
--- no_access_log eval
[qr{^/gz/.* new$}]
--- no_error_log
[error]
[warn]
gzA-Cc1Dd2Ee3Ff4AAAA



=== TEST 13: expiry (timeout=3s): learned, and followed at once
--- http_config
    upstream backend_exp {
        socketio_sticky timeout=3s;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /exA last;
            }
            return 200 "A $report\n";
        }
        location = /exA { }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /exB last;
            }
            return 200 "B $report\n";
        }
        location = /exB { }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_exp;
    }
--- user_files eval
[["hs.html", ::hs_page("/socket.io/?EIO=4&transport=polling")],
 ["exA", $::HS{exA}], ["exB", $::HS{exB}]]
--- request eval
["GET /hs.html",
 "GET /socket.io/?EIO=4&transport=polling&sid=exA-Mm4Nn5Oo6Pp7AAAA",
 "GET /socket.io/?EIO=4&transport=polling&sid=exB-Qq8Rr9Ss0Tt1AAAB"]
--- response_body eval
[::either($::HS{exA}, $::HS{exB}), "A learned\n", "B learned\n"]
--- no_error_log
[error]



=== TEST 14: expiry: every use restarts the idle timer (one every 0.5s for 5s); the unused session is forgotten
The same nginx (no --- config: no reload). --- wait sleeps after every request. Recency is kept
at one-second resolution, so a session is certainly kept while used less than timeout apart and
certainly forgotten once unused for more than timeout + 1s; the margins here are wide enough
for a slow, loaded machine (a use may come up to 2.5s late).
--- request eval
[("GET /socket.io/?EIO=4&transport=polling&sid=exA-Mm4Nn5Oo6Pp7AAAA") x 10,
 "GET /socket.io/?EIO=4&transport=polling&sid=exB-Qq8Rr9Ss0Tt1AAAB",
 "GET /socket.io/?EIO=4&transport=polling&sid=exA-Mm4Nn5Oo6Pp7AAAA"]
--- response_body eval
[("A learned\n") x 10, qr/\A[AB] fallback\n\z/, "A learned\n"]
--- wait: 0.5
--- no_error_log
[error]



=== TEST 15: expiry: used, then unused for 4.5s (more than timeout=3s + 1s): forgotten
--- request eval
[("GET /socket.io/?EIO=4&transport=polling&sid=exA-Mm4Nn5Oo6Pp7AAAA") x 2]
--- response_body eval
["A learned\n", qr/\A[AB] fallback\n\z/]
--- wait: 4.5
--- no_error_log
[error]



=== TEST 16: a full 32k zone shared by two upstreams: a session in use outlives 3000 later handshakes nobody followed; of those, the oldest are forgotten
Backend K mints one known sid, which is then used once (a polling request); backend M mints
"lru-N" for the handshake n=N (ids known in advance, so that the newest ones can be
followed), 3000 of them in three SSI pages (TEST 16b, 16c, the same nginx): the evictions take
only those, and are logged once (at most one line a minute per zone), without naming a session.
--- http_config
    upstream lru_known {
        socketio_sticky zone=tiny:32k;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
    }
    upstream lru_many {
        socketio_sticky zone=tiny;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        location / {
            if ($arg_sid = "") {
                return 200 '0{"sid":"lru-known-Vw3Xy4Za5AAA","upgrades":[]}';
            }
            return 200 "K $report\n";
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        location / {
            if ($arg_sid = "") {
                return 200 '0{"sid":"lru-$arg_n","upgrades":[]}';
            }
            return 200 "M $report\n";
        }
    }
--- config
    location /k/ {
        proxy_pass http://lru_known/socket.io/;
    }
    location /m/ {
        proxy_pass http://lru_many/socket.io/;
    }
--- user_files eval
[map { ["p$_.html", ::lru_page($_)] } 1 .. 3]
--- request eval
["GET /k/?EIO=4&transport=polling",
 "GET /k/?EIO=4&transport=polling&sid=lru-known-Vw3Xy4Za5AAA"]
--- response_body eval
['0{"sid":"lru-known-Vw3Xy4Za5AAA","upgrades":[]}',
 "K learned\n"]
--- no_error_log
[error]
is full



=== TEST 16b: the first thousand handshakes fill the zone: one line says so
The same nginx (no --- config).
--- request
GET /p1.html
--- response_body eval
::lru_body(1)
--- timeout: 30
--- grep_error_log eval
qr/socketio_sticky: zone "tiny" is full and evicts sessions: .*/
--- grep_error_log_out
socketio_sticky: zone "tiny" is full and evicts sessions: 1 so far, 0 of them in use (it holds 714 sessions; a larger zone keeps more)
--- no_error_log
[error]
lru-known-Vw3Xy4Za5AAA
lru-0



=== TEST 16c: 2000 more: no new line within the minute; the session in use is kept, the oldest unused ones are gone
The same nginx (no --- config).
--- request eval
["GET /p2.html", "GET /p3.html",
 "GET /k/?EIO=4&transport=polling&sid=lru-known-Vw3Xy4Za5AAA",
 "GET /m/?EIO=4&transport=polling&sid=lru-0001",
 "GET /m/?EIO=4&transport=polling&sid=lru-3000",
 "GET /m/?EIO=4&transport=polling&sid=lru-2999",
 "GET /m/?EIO=4&transport=polling&sid=lru-2901"]
--- response_body eval
[(map { ::lru_body($_) } 2 .. 3),
 "K learned\n", "M fallback\n", "M learned\n", "M learned\n", "M learned\n"]
--- timeout: 30
--- no_error_log
[error]
is full
lru-known-Vw3Xy4Za5AAA
lru-0001



=== TEST 17: reload: learned before the reload
--- http_config
    upstream backend_rl {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /rlA last;
            }
            return 200 "A $report\n";
        }
        location = /rlA { }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        root html;
        location / {
            if ($arg_sid = "") {
                rewrite ^ /rlB last;
            }
            return 200 "B $report\n";
        }
        location = /rlB { }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_rl;
    }
--- user_files eval
[["hs.html", ::hs_page("/socket.io/?EIO=4&transport=polling")],
 ["rlA", $::HS{rlA}], ["rlB", $::HS{rlB}]]
--- request eval
["GET /hs.html",
 "GET /socket.io/?EIO=4&transport=polling&sid=rlA-Uu2Vv3Ww4Xx5AAAA",
 "GET /socket.io/?EIO=4&transport=polling&sid=rlB-Yy6Zz7Aa8Bb9AAAB"]
--- response_body eval
[::either($::HS{rlA}, $::HS{rlB}), "A learned\n", "B learned\n"]
--- no_error_log
[error]



=== TEST 18: reload: server lines reordered and one added: the sessions are still learned
--- http_config
    upstream backend_rl {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_3;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        location / {
            return 200 "A $report\n";
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        location / {
            return 200 "B $report\n";
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_3;
        location / {
            return 200 "C $report\n";
        }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_rl;
    }
--- request eval
[(map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=rlA-Uu2Vv3Ww4Xx5AAAA" } 1 .. 3),
 (map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=rlB-Yy6Zz7Aa8Bb9AAAB" } 1 .. 3),
 "GET /socket.io/?EIO=4&transport=polling&sid=rlC-never-minted"]
--- response_body eval
[("A learned\n") x 3, ("B learned\n") x 3, qr/\A[ABC] fallback\n\z/]
--- no_error_log
[error]



=== TEST 19: reload with the minting server down: its session falls through (round robin, or rebound with a device_id)
--- http_config
    upstream backend_rl {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1 down;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_3;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        location / {
            return 200 "A $report\n";
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        location / {
            return 200 "B $report\n";
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_3;
        location / {
            return 200 "C $report\n";
        }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_rl;
    }
--- request eval
[(map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=rlA-Uu2Vv3Ww4Xx5AAAA" } 1 .. 2),
 (map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=rlA-Uu2Vv3Ww4Xx5AAAA&device_id=dev-$_" } 1 .. 2),
 (map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=rlB-Yy6Zz7Aa8Bb9AAAB" } 1 .. 3)]
--- response_body eval
[(qr/\A[BC] fallback\n\z/) x 2, (qr/\A[BC] rebound\n\z/) x 2, ("B learned\n") x 3]
--- no_error_log
[error]



=== TEST 20: reload without the minting server: its session falls through, the other stays
--- http_config
    upstream backend_rl {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_3;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        location / {
            return 200 "A $report\n";
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        location / {
            return 200 "B $report\n";
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_3;
        location / {
            return 200 "C $report\n";
        }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_rl;
    }
--- request eval
[(map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=rlA-Uu2Vv3Ww4Xx5AAAA" } 1 .. 3),
 (map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=rlB-Yy6Zz7Aa8Bb9AAAB" } 1 .. 3)]
--- response_body eval
[(qr/\A[BC] fallback\n\z/) x 3, ("B learned\n") x 3]
--- no_error_log
[error]



=== TEST 21: reload with the minting server back: its session (kept in the zone) is learned again
--- http_config
    upstream backend_rl {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        server 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_1;
        location / {
            return 200 "A $report\n";
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_2;
        location / {
            return 200 "B $report\n";
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_LEARN_PORT_3;
        location / {
            return 200 "C $report\n";
        }
    }
--- config
    location /socket.io/ {
        proxy_pass http://backend_rl;
    }
--- request eval
[(map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=rlA-Uu2Vv3Ww4Xx5AAAA" } 1 .. 3),
 (map { "GET /socket.io/?EIO=4&transport=polling&t=$_&sid=rlB-Yy6Zz7Aa8Bb9AAAB" } 1 .. 3)]
--- response_body eval
[("A learned\n") x 3, ("B learned\n") x 3]
--- no_error_log
[error]


=== TEST 22: state=, and reloads: learned into the state file
--- http_config eval: $::StateReload
--- config
    location /socket.io/ {
        proxy_pass http://backend_sf;
    }
--- user_files eval
[["hs.html", ::hs_page("/socket.io/?EIO=4&transport=polling")],
 ["sfA", $::HS{sfA}], ["sfB", $::HS{sfB}]]
--- request eval
["GET /hs.html",
 "GET /socket.io/?EIO=4&transport=polling&sid=sfA-Ht4Ju6Ki8Lo0AAAA",
 "GET /socket.io/?EIO=4&transport=polling&sid=sfB-Mp2Nq4Or6Ps8AAAB"]
--- response_body eval
[::either($::HS{sfA}, $::HS{sfB}), "A learned\n", "B learned\n"]
--- no_error_log
[error]



=== TEST 23: reloaded with the same configuration: the new cycle uses the file that is mapped, the sessions are still learned
--- http_config eval: $::StateReload
--- config
    location /socket.io/ {
        proxy_pass http://backend_sf;
    }
--- request eval
["GET /socket.io/?EIO=4&transport=polling&sid=sfA-Ht4Ju6Ki8Lo0AAAA",
 "GET /socket.io/?EIO=4&transport=polling&sid=sfB-Mp2Nq4Or6Ps8AAAB"]
--- response_body eval
["A learned\n", "B learned\n"]
--- no_error_log
[emerg]
[error]



=== TEST 24: and again: every reload still recognises its own state file (none is refused as a file of something else)
--- http_config eval: $::StateReload
--- config
    location /socket.io/ {
        proxy_pass http://backend_sf;
    }
--- request eval
["GET /socket.io/?EIO=4&transport=polling&sid=sfA-Ht4Ju6Ki8Lo0AAAA",
 "GET /socket.io/?EIO=4&transport=polling&sid=sfB-Mp2Nq4Or6Ps8AAAB"]
--- response_body eval
["A learned\n", "B learned\n"]
--- no_error_log
[emerg]
[error]
