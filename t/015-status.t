# socketio_sticky_status: the status endpoint. Its formats and how a request picks one (the
# format argument, the Accept header, JSON by default), its errors (400, 405) and HEAD; the
# exact figures of every upstream with the module: sessions per server after handshakes, the
# table's counters (learned, evicted, expired, duplicate ids), requests per server by route
# (learned, device_id, route, cookie, fallback, rebound) and strict refusals, handshakes not
# learned by reason (compressed, unrecognised, too_long, not_200); upstreams sharing a zone,
# backup and down servers (marked down, or failed); the counters through reloads (same and
# changed configuration); the Prometheus text format in full for a known state; and
# the directive's configuration errors.
#
# Mock backends A, B, C listen on ports fixed for the whole file ($TEST_NGINX_STATUS_PORT_1..3),
# so that a server keeps its identity ("127.0.0.1:PORT"), and with it its counters and sessions,
# from one block to the next; nothing listens on $TEST_NGINX_STATUS_PORT_4 (server D: a closed
# port). A backend answers a request with `mint=ID` with an Engine.IO 4 open packet naming the
# sid "X-ID" (X its letter: the sid says who minted it), one with `same=SID` with an open packet
# naming SID itself (any backend mints the same sid), and any other request with its letter and
# a newline. Under /skip/ it answers the handshakes that are not learned: an open packet sent
# with Content-Encoding: gzip (uncompressed: even a readable sid is not learned), an HTML page, a sid of 257 bytes (and, learned, one of 256), an io cookie of 257
# bytes, 404 and 500.
#
# Sessions per server are exact without knowing which backend took which handshake: nginx's
# smooth weighted round robin gives, in any run of consecutive picks as long as the sum of the
# weights (one worker, no failures), each server exactly its weight. So 8 handshakes over
# A (weight 2), B, C land 4, 2, 2; the follow-ups then try the ids "A-hN", "B-hN" and "C-hN"
# for every N: exactly one of the three was minted (learned, by its server), the two others are
# unknown (fallback: 16 more picks, 8, 4, 4). Several handshakes or follow-ups are one request
# for an SSI page (StickyPages: one `include virtual` per request, one after another).
#
# The JSON status is checked in full: the expected text is built from the figures each block
# gives (::ups, ::srv; every figure not given is 0) and compared byte for byte, with the
# module's version (Cargo.toml) and nginx's (`nginx -v`); the Prometheus text is checked in full
# once (TEST 9), otherwise by its sample lines. A table's capacity is what a zone of that size
# holds with 4 KiB pages (%Capacity, the same on nginx 1.22 and 1.28).
#
# The file runs in HUP mode (use_hup()): nginx is started once and every block with a
# --- config reloads it, so the zones (and the counters in them) live on from block to block;
# a block without --- config keeps nginx as it is. Blocks run in order (no_shuffle).

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use StickyPages;
use StickyCookie;

repeat_each(1);
no_shuffle();
use_hup();
log_level('info');
# --- error_log patterns are checked after every request of a block, against what the block
# logged so far (the request that logs the line comes first).
check_accum_error_log();

::fixed_ports('TEST_NGINX_STATUS_PORT_', 4);

our %Port = (A => $ENV{TEST_NGINX_STATUS_PORT_1}, B => $ENV{TEST_NGINX_STATUS_PORT_2},
             C => $ENV{TEST_NGINX_STATUS_PORT_3}, D => $ENV{TEST_NGINX_STATUS_PORT_4});

sub ::addr { return "127.0.0.1:$Port{$_[0]}" }

# The route cookie of backend X (cookie_key=k3y).
sub ::cookie_of { my $s = ::addr($_[0]); return "Cookie: srv=" . ::cookie_id('k3y', undef, $s, $s) }

# The versions the status names: the module's (Cargo.toml's [package] version) and nginx's.
use File::Basename qw(dirname);
use File::Spec;
our $Version = do {
    my $file = File::Spec->catfile(dirname(File::Spec->rel2abs(__FILE__)), '..', 'Cargo.toml');
    open my $fh, '<', $file or die "$file: $!\n";
    local $/;
    my $toml = <$fh>;
    $toml =~ /^\[package\][^\[]*?^version\s*=\s*"([^"]+)"/ms or die "no version in Cargo.toml\n";
    $1;
};
our $NginxVersion = do {
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    my $v = `"$bin" -v 2>&1`;
    $v =~ m{nginx/(\S+)} or die "cannot read the version of $bin: $v\n";
    $1;
};

# Sessions a table of the zone's size holds (4 KiB pages).
our %Capacity = ('32k' => 714, '64k' => 1624);

our @Routes = qw(learned device_id route cookie fallback rebound prefix);
our @Skips = qw(compressed unrecognised too_long not_200);

# One server of an upstream in the JSON form: [X, SESSIONS, {ROUTE => N}, FLAGS] with the flags
# 'backup' and 'down'.
sub ::srv {
    my ($x, $sessions, $req, @flags) = @_;
    my %f = map { $_ => 1 } @flags;
    my $a = ::addr($x);
    return qq|{"name":"$a","address":"$a","backup":| . ($f{backup} ? 'true' : 'false')
        . qq|,"state":"| . ($f{down} ? 'down' : 'up') . qq|","sessions":$sessions,"requests":{|
        . join(',', map { qq|"$_":| . ($req->{$_} // 0) } @Routes) . '}}';
}

# One upstream in the JSON form: zone => "NAME:SIZE", the figures (sessions, learned, evicted,
# evicted_in_use, expired, duplicate_ids, refused; 0 unless given), skipped => [4 reasons] and
# servers => [[::srv arguments], ...].
sub ::ups {
    my ($name, %u) = @_;
    my ($zone, $size) = split /:/, $u{zone};
    my $j = qq|{"name":"$name","zone":"$zone","capacity":$Capacity{$size}|;
    $j .= qq|,"$_":| . ($u{$_} // 0) for qw(sessions learned evicted evicted_in_use expired duplicate_ids);
    my @sk = @{ $u{skipped} || [0, 0, 0, 0] };
    $j .= ',"learn_skipped":{' . join(',', map { qq|"$Skips[$_]":$sk[$_]| } 0 .. 3) . '}';
    $j .= ',"refused_strict":' . ($u{refused} // 0);
    return $j . ',"servers":[' . join(',', map { ::srv(@$_) } @{ $u{servers} }) . ']}';
}

# The whole JSON answer for these upstreams.
sub ::status {
    return qq|{"module":"socketio_sticky","version":"$Version","nginx":"$NginxVersion","upstreams":[|
        . join(',', @_) . "]}\n";
}

# A pattern for exactly this text.
sub ::exactly { my $s = shift; return qr/\A\Q$s\E\z/ }

# A pattern for a text holding each of these lines (whole lines, anywhere).
sub ::has_lines { return '(?ms)\A' . join('', map { "(?=.*^\Q$_\E\$)" } @_) }

# A pattern for a text holding each of these strings (anywhere).
sub ::has { return '(?s)\A' . join('', map { "(?=.*\Q$_\E)" } @_) }

# The sample line of a Prometheus family for upstream U and server X (its address), with the
# label route=ROUTE if given.
sub ::sample {
    my ($family, $u, $x, $value, $route) = @_;
    my $r = defined $route ? qq|,route="$route"| : '';
    return qq|socketio_sticky_$family\{upstream="$u",server="| . ::addr($x) . qq|"$r} $value|;
}

# An SSI page of COUNT handshakes through LOCATION, one after another: mint=TAG1, mint=TAG2, ...
sub ::handshakes {
    my ($location, $count, $tag) = @_;
    return ::page(map { "$location?EIO=4&transport=polling&mint=$tag$_" } 1 .. $count);
}

# The open packet a backend answers to mint=ID, or to same=SID.
sub ::open_packet { return qq|0{"sid":"$_[0]","upgrades":[],"pingInterval":25000,"pingTimeout":20000}| }

our $Long = 'k' x 257;
our $Max = 'm' x 256;

sub ::backend {
    my ($x, $n) = @_;
    my $hs = ::open_packet("$x-\$arg_mint");
    my $same = ::open_packet("\$arg_same");
    my $long = ::open_packet($Long);
    my $max = ::open_packet($Max);
    my $gz = ::open_packet('gz-1');
    return <<"_EOC_";
    server {
        listen 127.0.0.1:\$TEST_NGINX_STATUS_PORT_$n;
        root html;
        location / {
            add_header X-Backend $x;
            if (\$arg_same) {
                return 200 '$same';
            }
            if (\$arg_mint) {
                return 200 '$hs';
            }
            return 200 "$x\\n";
        }
        location = /skip/gzip {
            add_header Content-Encoding gzip;
            return 200 '$gz';
        }
        location = /skip/html {
            default_type text/html;
            return 200 "<html><body>no handshake here</body></html>";
        }
        location = /skip/long {
            return 200 '$long';
        }
        location = /skip/max {
            return 200 '$max';
        }
        location = /skip/cookie {
            add_header Set-Cookie "io=$Long; Path=/; HttpOnly";
            return 200 "ok";
        }
        location = /skip/404 {
            return 404;
        }
        location = /skip/500 {
            return 500;
        }
    }
_EOC_
}

my $Backends = join '', map { ::backend($_, ord($_) - ord('A') + 1) } qw(A B C);

# The upstreams of TEST 3-7: five upstreams sharing the zone "routes". `app` has route labels
# and the route cookie; `solo` one primary server (so a device's server is A) and a backup;
# `fallen` and `strict` route the label rc to C, which is down there (not in `app`); `spare`
# has its only primary server down, so its requests go to the backup.
our $RoutesUpstreams = <<'_EOC_';
    upstream app {
        socketio_sticky zone=routes:64k route=^(r[a-z])- cookie=srv cookie_key=k3y;
        socketio_sticky_route ra 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
        socketio_sticky_route rb 127.0.0.1:$TEST_NGINX_STATUS_PORT_2;
        socketio_sticky_route rc 127.0.0.1:$TEST_NGINX_STATUS_PORT_3;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1 weight=2;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_2;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_3;
    }
_EOC_

our $OtherRoutesUpstreams = <<'_EOC_';
    upstream solo {
        socketio_sticky zone=routes;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_2 backup;
    }
    upstream fallen {
        socketio_sticky zone=routes route=^(r[a-z])-;
        socketio_sticky_route rc 127.0.0.1:$TEST_NGINX_STATUS_PORT_3;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_3 down;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_2 backup;
    }
    upstream strict {
        socketio_sticky zone=routes strict route=^(r[a-z])-;
        socketio_sticky_route rc 127.0.0.1:$TEST_NGINX_STATUS_PORT_3;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_3 down;
    }
    upstream spare {
        socketio_sticky zone=routes;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_3 down;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_2 backup;
    }
_EOC_

our $RoutesLocations = join '', map { <<"_EOC_" } qw(app solo fallen strict spare);
    location /$_/ {
        proxy_pass http://$_;
        add_header X-Status \$socketio_sticky_status always;
    }
_EOC_

# The status after TEST 5 (and, unchanged, after the reload of TEST 6). app's fallback counts
# are those of TEST 3 (4, 2, 2), TEST 4 (8, 4, 4) and TEST 5 (2, 1, 1); its sessions 4, 2, 2 and
# C-hc.
sub ::routes_after_5 {
    my $z = 'routes:64k';
    my ($sa, $sb, $sc) = (4, 2, 3);
    my %t = (zone => $z, sessions => 9, learned => 9);
    return (::ups('app', %t, servers => [
                [A => $sa, {learned => 4, route => 1, fallback => 14}],
                [B => $sb, {learned => 2, route => 2, fallback => 7}],
                [C => $sc, {learned => 4, route => 3, cookie => 2, fallback => 7}]]),
            ::ups('solo', %t, servers => [[A => $sa, {device_id => 3}],
                                          [B => $sb, {}, 'backup']]),
            ::ups('fallen', %t, servers => [[A => $sa, {rebound => 2, fallback => 1}],
                                            [C => $sc, {}, 'down'],
                                            [B => $sb, {}, 'backup']]),
            ::ups('strict', %t, refused => 2, servers => [[A => $sa, {fallback => 1}],
                                                          [C => $sc, {}, 'down']]),
            ::ups('spare', %t, servers => [[C => $sc, {}, 'down'],
                                           [B => $sb, {fallback => 1}, 'backup']]));
}

add_block_preprocessor(sub {
    my $block = shift;
    return if !defined $block->config || defined $block->must_die;
    $block->set_value(http_config => "    access_log off;\n" . $Backends
                      . (defined $block->http_config ? $block->http_config : ''));
    $block->set_value(config => <<'_EOC_' . $block->config);
    location = /status {
        socketio_sticky_status;
    }
    location ~ \.html$ {
        ssi on;
        ssi_types *;
    }
_EOC_
});

run_tests();

__DATA__

=== TEST 1: no upstream uses socketio_sticky (one upstream without it): an empty list in every format
--- http_config
    upstream plain {
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
    }
--- config
    location /plain/ {
        proxy_pass http://plain;
    }
--- request eval
["GET /plain/", "GET /status", "GET /status?format=prometheus", "GET /status?format=html"]
--- response_body_like eval
["^A\n\\z",
 ::exactly(::status()),
 ::exactly(<<"_EOP_"),
# HELP socketio_sticky_info Version of the socketio_sticky module and of the nginx it runs in (always 1).
# TYPE socketio_sticky_info gauge
socketio_sticky_info{version="$::Version",nginx="$::NginxVersion"} 1
_EOP_
 qr{\A<!DOCTYPE html>\n.*<p class="empty">No upstream uses socketio_sticky\.</p>\n</main>.*</html>\n\z}s]
--- response_headers eval
["", "Content-Type: application/json", "Content-Type: text/plain; version=0.0.4; charset=utf-8",
 "Content-Type: text/html; charset=utf-8"]
--- no_error_log
[error]
[warn]



=== TEST 2: the formats: JSON by default, format= decides (any case), else the Accept header (q-values; Prometheus's and browsers' own); 400 for an unknown format, 405 for POST, HEAD without a body; never cached
--- http_config
    upstream fmt {
        socketio_sticky zone=fmt:64k;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_2 backup;
    }
--- config
--- request eval
["GET /status",
 "GET /status?format=json",
 "GET /status?format=prometheus",
 "GET /status?format=PROMETHEUS",
 "GET /status?format=html",
 "GET /status",
 "GET /status",
 "GET /status",
 "GET /status",
 "GET /status",
 "GET /status",
 "GET /status",
 "GET /status?format=html",
 "GET /status?format=nope",
 "GET /status?format=",
 "POST /status\nformat=html",
 "HEAD /status",
 "HEAD /status?format=nope"]
--- more_headers eval
["", "", "", "", "",
 "Accept: text/html",
 "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
 "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
 "Accept: */*",
 "Accept: text/html;q=0.5, application/json",
 "Accept: image/png",
 "Accept: text/plain;q=abc",
 "Accept: application/json",
 "", "", "", "", ""]
--- error_code eval
[(200) x 13, 400, 400, 405, 200, 400]
--- response_headers eval
my $json = ::status(::ups('fmt', zone => 'fmt:64k', servers => [[A => 0, {}], [B => 0, {}, 'backup']]));
my ($j, $p, $h, $t) = map { "Content-Type: $_\nCache-Control: no-store" }
    "application/json", "text/plain; version=0.0.4; charset=utf-8", "text/html; charset=utf-8",
    "text/plain; charset=utf-8";
[$j, $j, $p, $p, $h, $h, $h, $p, $j, $j, $j, $j, $h, $t, $t,
 "Content-Type: text/html\nAllow: GET, HEAD\n!Cache-Control",
 "$j\nContent-Length: " . length($json),
 "$t\nContent-Length: 66"]
--- response_body_like eval
my $json = ::status(::ups('fmt', zone => 'fmt:64k', servers => [[A => 0, {}], [B => 0, {}, 'backup']]));
my $prom = '(?ms)\A# HELP socketio_sticky_info .*\n# TYPE socketio_sticky_info gauge\n'
    . "socketio_sticky_info\\{version=\"\Q$::Version\E\",nginx=\"\Q$::NginxVersion\E\"\\} 1\n"
    . '.*^socketio_sticky_table_capacity\{upstream="fmt"\} ' . $::Capacity{'64k'} . '$';
my $html = '\A<!DOCTYPE html>\n.*<section class="upstream" data-upstream="fmt">';
my $bad = ::exactly("unknown format: use format=json, format=prometheus or format=html\n");
[::exactly($json), ::exactly($json), $prom, $prom, $html, $html, $html, $prom,
 (::exactly($json)) x 4, $html, $bad, $bad, '<title>405 Not Allowed</title>', '\A\z', '\A\z']
--- no_error_log
[error]
[warn]



=== TEST 3: sessions per server: 8 handshakes over A (weight 2), B and C are 4, 2 and 2 sessions; each counted as fallback on its server
--- http_config eval: $::RoutesUpstreams . $::OtherRoutesUpstreams
--- config eval: $::RoutesLocations
--- user_files eval
[["hs.html", ::handshakes('/app/', 8, 'h')],
 ["probe.html", ::page(map { my $n = $_; map { "/app/?EIO=4&transport=polling&sid=$_-h$n" } qw(A B C) } 1 .. 8)]]
--- request eval
["GET /hs.html", "GET /status", "GET /status?format=prometheus", "GET /status?format=html"]
--- response_body_like eval
my $z = 'routes:64k';
my %t = (zone => $z, sessions => 8, learned => 8);
my @app = ([A => 4, {fallback => 4}], [B => 2, {fallback => 2}], [C => 2, {fallback => 2}]);
my $prom = ::has_lines(
    'socketio_sticky_table_sessions{upstream="app"} 8',
    (map { ::sample('sessions', 'app', @$_[0, 1]) } @app),
    ::sample('sessions', 'spare', 'B', 2),
    'socketio_sticky_learned_total{upstream="app"} 8',
    'socketio_sticky_learned_total{upstream="spare"} 8',
    ::sample('requests_total', 'app', 'A', 4, 'fallback'),
    ::sample('requests_total', 'app', 'C', 2, 'fallback'));
my $html = ::has(map {
    my ($x, $n) = @$_;
    my $a = ::addr($x);
    qq|<div class="server" data-upstream="app" data-address="$a" data-sessions="$n">|
    . qq|<div class="who"><span class="name">$a</span><span class="state state-up">up</span></div>|
    . qq|<div class="bar"><div class="fill" style="width:| . ($n == 4 ? 100 : 50) . qq|%"></div></div>|
    . qq|<span class="sessions">$n</span>| } @app);
["\\A(?:0\\{\"sid\":\"[ABC]-h[1-8]\",[^}]+\\}){8}\\z",
 ::exactly(::status(
     ::ups('app', %t, servers => \@app),
     ::ups('solo', %t, servers => [[A => 4, {}], [B => 2, {}, 'backup']]),
     ::ups('fallen', %t, servers => [[A => 4, {}], [C => 2, {}, 'down'], [B => 2, {}, 'backup']]),
     ::ups('strict', %t, servers => [[A => 4, {}], [C => 2, {}, 'down']]),
     ::ups('spare', %t, servers => [[C => 2, {}, 'down'], [B => 2, {}, 'backup']]))),
 $prom, $html]
--- no_error_log
[error]
[warn]



=== TEST 4: learned: of the ids A-hN, B-hN, C-hN the minted one goes to its server (4, 2, 2 learned), the 16 others are unknown (8, 4, 4 more fallback)
The same nginx (no --- config).
--- request eval
["GET /probe.html", "GET /status"]
--- response_body_like eval
my %t = (zone => 'routes:64k', sessions => 8, learned => 8);
["\\A(?:[ABC]\n){24}\\z",
 ::exactly(::status(
     ::ups('app', %t, servers => [[A => 4, {learned => 4, fallback => 12}],
                                  [B => 2, {learned => 2, fallback => 6}],
                                  [C => 2, {learned => 2, fallback => 6}]]),
     ::ups('solo', %t, servers => [[A => 4, {}], [B => 2, {}, 'backup']]),
     ::ups('fallen', %t, servers => [[A => 4, {}], [C => 2, {}, 'down'], [B => 2, {}, 'backup']]),
     ::ups('strict', %t, servers => [[A => 4, {}], [C => 2, {}, 'down']]),
     ::ups('spare', %t, servers => [[C => 2, {}, 'down'], [B => 2, {}, 'backup']])))]
--- no_error_log
[error]
[warn]



=== TEST 5: every route, counted on the server it chose: strict refusals (502, counted for the upstream), cookie (a handshake, learned, and a request without sid), learned over cookie, route labels, fallback, device_id, rebound (a learned session and a label whose server is down), a backup server
The same nginx (no --- config). The refusals come first: nginx logs them, and the error log is
checked after every request.
--- request eval
["GET /strict/?EIO=4&transport=polling&sid=rc-1",
 "GET /app/?EIO=4&transport=polling&mint=hc",
 "GET /app/?transport=polling&t=1",
 "GET /app/?EIO=4&transport=polling&sid=C-hc",
 "GET /app/?EIO=4&transport=polling&sid=C-hc",
 "GET /app/?EIO=4&transport=websocket&sid=ra-1",
 "GET /app/?EIO=4&transport=websocket&sid=rb-1",
 "GET /app/?EIO=4&transport=websocket&sid=rb-2",
 "GET /app/?EIO=4&transport=websocket&sid=rc-1",
 "GET /app/?EIO=4&transport=websocket&sid=rc-2",
 "GET /app/?EIO=4&transport=websocket&sid=rc-3",
 (map { "GET /app/?transport=polling&t=$_" } 1 .. 4),
 (map { "GET /solo/?transport=polling&device_id=dev-$_" } 1 .. 3),
 "GET /fallen/?EIO=4&transport=polling&sid=C-hc&device_id=dev-1",
 "GET /fallen/?EIO=4&transport=polling&sid=rc-9&device_id=dev-2",
 "GET /fallen/?EIO=4&transport=polling&sid=C-hc",
 "GET /strict/?EIO=4&transport=polling&sid=C-hc",
 "GET /strict/?transport=polling",
 "GET /spare/?transport=polling",
 "GET /status"]
--- more_headers eval
["", ::cookie_of('C'), ::cookie_of('C'), "", ::cookie_of('A'), ("") x 20]
--- error_code eval
[502, (200) x 20, 502, 200, 200, 200]
--- response_headers eval
[(map { "X-Status: $_" } qw(strict cookie cookie learned learned route route route route route route),
  ('fallback') x 4, ('device_id') x 3, qw(rebound rebound fallback strict fallback fallback)),
 "Content-Type: application/json"]
--- response_body_like eval
["502 Bad Gateway",
 ::exactly(::open_packet('C-hc')), "^C\n\\z", "^C\n\\z", "^C\n\\z",
 "^A\n\\z", "^B\n\\z", "^B\n\\z", "^C\n\\z", "^C\n\\z", "^C\n\\z",
 ("^[ABC]\n\\z") x 4, ("^A\n\\z") x 6, "502 Bad Gateway", "^A\n\\z", "^B\n\\z",
 ::exactly(::status(::routes_after_5()))]
--- error_log
no live upstreams while connecting to upstream
--- no_error_log
[warn]



=== TEST 6: reloaded with the same configuration: every figure is as it was
--- http_config eval: $::RoutesUpstreams . $::OtherRoutesUpstreams
--- config eval: $::RoutesLocations
--- request
GET /status
--- response_body_like eval
::exactly(::status(::routes_after_5()))
--- no_error_log
[error]
[warn]



=== TEST 7: reloaded with app's servers reordered and B removed: A's and C's counters and sessions carry on by identity (a learned request adds to C's), B is no longer shown (its sessions stay in the table)
--- http_config eval
<<'_EOC_' . $::OtherRoutesUpstreams
    upstream app {
        socketio_sticky zone=routes:64k route=^(r[a-z])- cookie=srv cookie_key=k3y;
        socketio_sticky_route ra 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
        socketio_sticky_route rc 127.0.0.1:$TEST_NGINX_STATUS_PORT_3;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_3;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1 weight=2;
    }
_EOC_
--- config eval: $::RoutesLocations
--- request eval
["GET /app/?EIO=4&transport=polling&sid=C-hc", "GET /status"]
--- response_headers eval
["X-Status: learned", ""]
--- response_body_like eval
my @after = ::routes_after_5();
$after[0] = ::ups('app', zone => 'routes:64k', sessions => 9, learned => 9, servers => [
    [C => 3, {learned => 5, route => 3, cookie => 2, fallback => 7}],
    [A => 4, {learned => 4, route => 1, fallback => 14}]]);
["^C\n\\z", ::exactly(::status(@after))]
--- no_error_log
[error]
[warn]



=== TEST 8: handshakes not learned, by reason: compressed (its sid stays unknown), unrecognised (the same body for a request that is no handshake: not counted), sid of 257 bytes, io cookie of 257 bytes, 404, 500, nginx's own 502; a 256-byte sid is learned; a failed server (max_fails) is down, its backup answers
`flaky`'s D (a closed port) fails once (max_fails=1) and is then down; its request is retried on
the backup A, which mints the session (A-fl, learned for A in the zone that `skip` shares).
`gone` has one server, D: nginx counts no failure for a single server, so it stays up. (Their
requests come first: nginx logs them, and the error log is checked after every request.)
--- http_config
    upstream skip {
        socketio_sticky zone=skip:64k;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
    }
    upstream flaky {
        socketio_sticky zone=skip;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_4 max_fails=1 fail_timeout=60s;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1 backup;
    }
    upstream gone {
        socketio_sticky zone=skip;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_4;
    }
--- config
    location /skip/ {
        proxy_pass http://skip;
    }
    location /flaky/ {
        proxy_pass http://flaky;
    }
    location /gone/ {
        proxy_pass http://gone;
    }
--- request eval
["GET /flaky/?EIO=4&transport=polling&mint=fl",
 "GET /gone/?EIO=4&transport=polling",
 "GET /skip/gzip?EIO=4&transport=polling",
 "GET /skip/html?EIO=4&transport=polling",
 "GET /skip/html?transport=polling",
 "GET /skip/long?EIO=4&transport=polling",
 "GET /skip/cookie?EIO=3&transport=polling",
 "GET /skip/max?EIO=4&transport=polling",
 "GET /skip/404?EIO=4&transport=polling",
 "GET /skip/500?EIO=4&transport=polling",
 "GET /skip/x?EIO=4&transport=polling&mint=ok",
 "GET /skip/x?EIO=4&transport=polling&sid=A-ok",
 "GET /skip/x?EIO=4&transport=polling&sid=$::Max",
 "GET /skip/x?EIO=4&transport=polling&sid=gz-1",
 "GET /status"]
--- error_code eval
[200, 502, 200, 200, 200, 200, 200, 200, 404, 500, 200, 200, 200, 200, 200]
--- response_headers eval
["", "", "Content-Encoding: gzip", ("") x 12]
--- response_body_like eval
my %t = (zone => 'skip:64k', sessions => 3, learned => 3);
[::exactly(::open_packet('A-fl')), "502 Bad Gateway",
 ::exactly(::open_packet('gz-1')), "no handshake here", "no handshake here", ::exactly(::open_packet($::Long)),
 "^ok\\z", ::exactly(::open_packet($::Max)), "404 Not Found", "500 Internal Server Error",
 ::exactly(::open_packet('A-ok')), "^A\n\\z", "^A\n\\z", "^A\n\\z",
 ::exactly(::status(
     ::ups('skip', %t, skipped => [1, 1, 2, 2],
           servers => [[A => 3, {learned => 2, fallback => 10}]]),
     ::ups('flaky', %t, servers => [[D => 0, {fallback => 1}, 'down'],
                                    [A => 3, {fallback => 1}, 'backup']]),
     ::ups('gone', %t, skipped => [0, 0, 0, 1], servers => [[D => 0, {fallback => 1}]])))]
--- error_log
connect() failed (111: Connection refused) while connecting to upstream
upstream server temporarily disabled while connecting to upstream
--- no_error_log
[crit]



=== TEST 9: the Prometheus format in full (after a reload that keeps `skip` only): HELP and TYPE once per family, every sample
--- http_config
    upstream skip {
        socketio_sticky zone=skip:64k;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
    }
--- config
--- request
GET /status?format=prometheus
--- response_headers
Content-Type: text/plain; version=0.0.4; charset=utf-8
Cache-Control: no-store
--- response_body eval
my $a = ::addr('A');
my $requests = CORE::join '', map {
    my ($route, $n) = @$_;
    qq{socketio_sticky_requests_total{upstream="skip",server="$a",route="$route"} $n\n}
} [learned => 2], [device_id => 0], [route => 0], [cookie => 0], [fallback => 10],
  [rebound => 0], [prefix => 0];
<<"_EOP_";
# HELP socketio_sticky_info Version of the socketio_sticky module and of the nginx it runs in (always 1).
# TYPE socketio_sticky_info gauge
socketio_sticky_info{version="$::Version",nginx="$::NginxVersion"} 1
# HELP socketio_sticky_table_capacity Sessions the session table of the upstream's zone can hold (0 without a zone).
# TYPE socketio_sticky_table_capacity gauge
socketio_sticky_table_capacity{upstream="skip"} $::Capacity{'64k'}
# HELP socketio_sticky_table_sessions Sessions in the session table of the upstream's zone now (all upstreams of the zone).
# TYPE socketio_sticky_table_sessions gauge
socketio_sticky_table_sessions{upstream="skip"} 3
# HELP socketio_sticky_sessions Sessions the table holds for the server (label server: its address).
# TYPE socketio_sticky_sessions gauge
socketio_sticky_sessions{upstream="skip",server="$a"} 3
# HELP socketio_sticky_requests_total Requests sent to the server, by how it was chosen (route). route="strict" (server="") counts the upstream's requests refused by strict, which reached no server.
# TYPE socketio_sticky_requests_total counter
${requests}socketio_sticky_requests_total{upstream="skip",server="",route="strict"} 0
# HELP socketio_sticky_learned_total Session ids learned from handshake responses (new, or learned again for another server).
# TYPE socketio_sticky_learned_total counter
socketio_sticky_learned_total{upstream="skip"} 3
# HELP socketio_sticky_evicted_total Sessions dropped from the table because it was full; if this grows, give the zone more room.
# TYPE socketio_sticky_evicted_total counter
socketio_sticky_evicted_total{upstream="skip"} 0
# HELP socketio_sticky_evicted_in_use_total Evicted sessions that had been used after their handshake (their clients may change server).
# TYPE socketio_sticky_evicted_in_use_total counter
socketio_sticky_evicted_in_use_total{upstream="skip"} 0
# HELP socketio_sticky_expired_total Sessions forgotten after their idle timeout.
# TYPE socketio_sticky_expired_total counter
socketio_sticky_expired_total{upstream="skip"} 0
# HELP socketio_sticky_duplicate_ids_total Session ids minted by a second server while the first server's session was live.
# TYPE socketio_sticky_duplicate_ids_total counter
socketio_sticky_duplicate_ids_total{upstream="skip"} 0
# HELP socketio_sticky_learn_skipped_total Handshakes whose session id was not learned, by reason: compressed response, unrecognised body, id too long, status not 200.
# TYPE socketio_sticky_learn_skipped_total counter
socketio_sticky_learn_skipped_total{upstream="skip",reason="compressed"} 1
socketio_sticky_learn_skipped_total{upstream="skip",reason="unrecognised"} 1
socketio_sticky_learn_skipped_total{upstream="skip",reason="too_long"} 2
socketio_sticky_learn_skipped_total{upstream="skip",reason="not_200"} 2
_EOP_
--- no_error_log
[error]
[warn]



=== TEST 10: a route label naming a server whose port is closed (D, max_fails=1): the first request is counted for D (route), then with strict refused (502), without it rebound to the device's next server; once D has failed, strict refuses at once and the default falls back
`hard` and `soft` have their own peer lists: D fails once in each. (The request that logs the
failures comes first.)
--- http_config
    upstream hard {
        socketio_sticky zone=reach:64k strict route=^(r[a-z])-;
        socketio_sticky_route rd 127.0.0.1:$TEST_NGINX_STATUS_PORT_4;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_4 max_fails=1 fail_timeout=60s;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
    }
    upstream soft {
        socketio_sticky zone=reach route=^(r[a-z])-;
        socketio_sticky_route rd 127.0.0.1:$TEST_NGINX_STATUS_PORT_4;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_4 max_fails=1 fail_timeout=60s;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
    }
--- config
    location /hard/ {
        proxy_pass http://hard;
        add_header X-Status $socketio_sticky_status always;
    }
    location /soft/ {
        proxy_pass http://soft;
        add_header X-Status $socketio_sticky_status always;
    }
--- request eval
["GET /hard/?EIO=4&transport=polling&sid=rd-1",
 "GET /hard/?EIO=4&transport=polling&sid=rd-2",
 "GET /soft/?EIO=4&transport=polling&sid=rd-1&device_id=dev-1",
 "GET /soft/?EIO=4&transport=polling&sid=rd-2",
 "GET /status"]
--- error_code eval
[502, 502, 200, 200, 200]
--- response_headers eval
["X-Status: strict", "X-Status: strict", "X-Status: rebound", "X-Status: fallback", ""]
--- response_body_like eval
["502 Bad Gateway", "502 Bad Gateway", "^A\n\\z", "^A\n\\z",
 ::exactly(::status(
     ::ups('hard', zone => 'reach:64k', refused => 2,
           servers => [[D => 0, {route => 1}, 'down'], [A => 0, {}]]),
     ::ups('soft', zone => 'reach:64k',
           servers => [[D => 0, {route => 1}, 'down'], [A => 0, {rebound => 1, fallback => 1}]])))]
--- error_log
connect() failed (111: Connection refused) while connecting to upstream
upstream server temporarily disabled while connecting to upstream
no live upstreams while connecting to upstream



=== TEST 11: expiry (timeout=2s): 4 handshakes over A and B, 2 sessions each
--- http_config
    upstream brief {
        socketio_sticky zone=brief:64k timeout=2s;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_2;
    }
--- config
    location /brief/ {
        proxy_pass http://brief;
    }
--- user_files eval
[["hs.html", ::handshakes('/brief/', 4, 'e')]]
--- request eval
["GET /hs.html", "GET /status"]
--- response_body_like eval
["\\A(?:0\\{\"sid\":\"[AB]-e[1-4]\",[^}]+\\}){4}\\z",
 ::exactly(::status(::ups('brief', zone => 'brief:64k', sessions => 4, learned => 4,
                          servers => [[A => 2, {fallback => 2}], [B => 2, {fallback => 2}]])))]
--- no_error_log
[error]
[warn]



=== TEST 12: expiry: 4s without a request of the zone (the status is not read)
The same nginx (no --- config). --- wait sleeps after the request: the sessions of TEST 11 are
then certainly idle for more than timeout + 1s.
--- request
GET /status?format=nope
--- error_code: 400
--- wait: 4
--- no_error_log
[error]



=== TEST 13: expiry: reading the status drops the expired sessions: 0 per server, 4 expired; an expired id is unknown (fallback)
The same nginx (no --- config).
--- request eval
["GET /status", "GET /brief/?EIO=4&transport=polling&sid=A-e1", "GET /status?format=prometheus"]
--- response_body_like eval
[::exactly(::status(::ups('brief', zone => 'brief:64k', sessions => 0, learned => 4, expired => 4,
                         servers => [[A => 0, {fallback => 2}], [B => 0, {fallback => 2}]]))),
 "^[AB]\n\\z",
 ::has_lines('socketio_sticky_expired_total{upstream="brief"} 4',
             'socketio_sticky_table_sessions{upstream="brief"} 0',
             ::sample('sessions', 'brief', 'A', 0), ::sample('sessions', 'brief', 'B', 0))]
--- no_error_log
[error]
[warn]



=== TEST 14: a 32k zone (714 sessions): a session learned and used
--- http_config
    upstream crowd {
        socketio_sticky zone=tiny:32k;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
    }
--- config
    location /crowd/ {
        proxy_pass http://crowd;
    }
--- user_files eval
[["flood.html", ::handshakes('/crowd/', 718, 'f')]]
--- request eval
["GET /crowd/?EIO=4&transport=polling&mint=keep",
 "GET /crowd/?EIO=4&transport=polling&sid=A-keep",
 "GET /status"]
--- response_body eval
[::open_packet('A-keep'), "A\n",
 ::status(::ups('crowd', zone => 'tiny:32k', sessions => 1, learned => 1,
                servers => [[A => 1, {learned => 1, fallback => 1}]]))]
--- no_error_log
[error]
[warn]



=== TEST 15: the zone full: 718 more handshakes (nobody uses them) evict the 5 oldest of them; the session in use stays
The same nginx (no --- config).
--- request eval
["GET /flood.html",
 "GET /crowd/?EIO=4&transport=polling&sid=A-keep",
 "GET /crowd/?EIO=4&transport=polling&sid=A-f5",
 "GET /crowd/?EIO=4&transport=polling&sid=A-f6",
 "GET /status"]
--- response_body eval
[CORE::join('', map { ::open_packet("A-f$_") } 1 .. 718), "A\n", "A\n", "A\n",
 ::status(::ups('crowd', zone => 'tiny:32k', sessions => 714, learned => 719, evicted => 5,
                servers => [[A => 714, {learned => 3, fallback => 720}]]))]
--- timeout: 30
--- error_log eval
qr/socketio_sticky: zone "tiny" is full and evicts sessions: 1 so far, 0 of them in use \(it holds 714 sessions; a larger zone keeps more\)/
--- no_error_log
[error]



=== TEST 16: a session minted by A (upstream mint_a of the zone "dup", whose upstreams have one server each but `both`)
--- http_config
    upstream mint_a {
        socketio_sticky zone=dup:64k;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
    }
    upstream mint_b {
        socketio_sticky zone=dup;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_2;
    }
    upstream both {
        socketio_sticky zone=dup;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STATUS_PORT_2;
    }
--- config
    location /mint_a/ {
        proxy_pass http://mint_a;
    }
    location /mint_b/ {
        proxy_pass http://mint_b;
    }
    location /both/ {
        proxy_pass http://both;
    }
--- request eval
["GET /mint_a/?EIO=4&transport=polling&same=twin-Qz4Rk9Xc",
 "GET /both/?EIO=4&transport=polling&sid=twin-Qz4Rk9Xc"]
--- response_body eval
[::open_packet('twin-Qz4Rk9Xc'), "A\n"]
--- no_error_log
[error]
[warn]



=== TEST 17: B mints the same id while A's session is live: duplicate_ids 1, learned 2, the session is now B's (in every upstream of the zone); `both` sends it there
The same nginx (no --- config).
--- request eval
["GET /mint_b/?EIO=4&transport=polling&same=twin-Qz4Rk9Xc",
 "GET /both/?EIO=4&transport=polling&sid=twin-Qz4Rk9Xc",
 "GET /status"]
--- response_body eval
my %t = (zone => 'dup:64k', sessions => 1, learned => 2, duplicate_ids => 1);
[::open_packet('twin-Qz4Rk9Xc'), "B\n",
 ::status(::ups('mint_a', %t, servers => [[A => 0, {fallback => 1}]]),
          ::ups('mint_b', %t, servers => [[B => 1, {fallback => 1}]]),
          ::ups('both', %t, servers => [[A => 0, {learned => 1}], [B => 1, {learned => 1}]]))]
--- error_log eval
qr/\[warn\] .*socketio_sticky: two backends minted the same session id, the newest wins \(zone "dup", 1 so far\)/
--- no_error_log
[error]



=== TEST 18: socketio_sticky_status takes no argument
--- must_die
--- suppress_stderr
--- config
    include ../html/bad.conf;
--- user_files
>>> bad.conf
location = /status {
    socketio_sticky_status json;
}
--- error_log eval
qr{\[emerg\] (?:\d+#\d+: )?invalid number of arguments in "socketio_sticky_status" directive in \S*/html/bad\.conf:2$}m



=== TEST 19: socketio_sticky_status is not allowed in server{}
--- must_die
--- suppress_stderr
--- config
    include ../html/bad.conf;
--- user_files
>>> bad.conf
socketio_sticky_status;
--- error_log eval
qr{\[emerg\] (?:\d+#\d+: )?"socketio_sticky_status" directive is not allowed here in \S*/html/bad\.conf:1$}m



=== TEST 20: socketio_sticky_status is not allowed in http{}
--- must_die
--- suppress_stderr
--- http_config
    include ../html/bad.conf;
--- config
    location /t {
        return 204;
    }
--- user_files
>>> bad.conf
socketio_sticky_status;
--- error_log eval
qr{\[emerg\] (?:\d+#\d+: )?"socketio_sticky_status" directive is not allowed here in \S*/html/bad\.conf:1$}m



=== TEST 21: socketio_sticky_status is not allowed in upstream{}
--- must_die
--- suppress_stderr
--- http_config
    include ../html/bad.conf;
--- config
    location /t {
        return 204;
    }
--- user_files
>>> bad.conf
upstream backend {
    server 127.0.0.1:1;
    socketio_sticky_status;
}
--- error_log eval
qr{\[emerg\] (?:\d+#\d+: )?"socketio_sticky_status" directive is not allowed here in \S*/html/bad\.conf:3$}m



=== TEST 22: socketio_sticky_status is not allowed in an if{} of a location
--- must_die
--- suppress_stderr
--- config
    include ../html/bad.conf;
--- user_files
>>> bad.conf
location /t {
    if ($arg_x) {
        socketio_sticky_status;
    }
    return 204;
}
--- error_log eval
qr{\[emerg\] (?:\d+#\d+: )?"socketio_sticky_status" directive is not allowed here in \S*/html/bad\.conf:3$}m
