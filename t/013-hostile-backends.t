# Hostile backend responses to handshakes: truncated JSON, 10 MB bodies (an open packet first,
# garbage, a sid past the first 512 bytes), 1-byte chunks, bogus chunked framing, gzip, 2,000
# Set-Cookie headers and io= values of 256, 257 and 10,240 bytes, Engine.IO 3 lengths of 7 and
# more digits or of bytes > 9, JSONP with broken escapes, backends that close, reset or hang
# in the middle of a response. For each one:
#   - no worker crashes: no [alert], [crit] or [emerg], no "exited on signal";
#   - the client gets what nginx gives without the module: every hostile response is fetched
#     twice, through the module (/s/: upstream `hostile`) and through a plain proxy_pass to
#     the same backend (/p/), and both must show the same status and the same body (10 MB
#     bodies: length and MD5);
#   - nothing wrong is learned: a follow-up with a sid that the response did not properly hand
#     over is `fallback`, and the handshake is not logged "new" in the access log; a sid that
#     README's rules learn (a 200 response without Content-Encoding, a recognised form in
#     the first 512 bytes, a sid of at most 256 bytes) is `learned` and reaches the backend
#     that minted it;
#   - the module keeps working: every block ends with a normal handshake from each backend
#     whose follow-ups are learned and routed, and the last block asks for every session of
#     the file again;
#   - no session id appears in the error log (read at level info).
#
# Backend H ($TEST_NGINX_HOSTILE_PORT_1) is the raw-TCP server of t/lib/Hostile.pm: a
# handshake's `case=NAME` picks the bytes it sends (%Case below) and `m=KEY` the session id it
# mints, ::sid(KEY) (the id itself is never in a request line: nginx logs those with its own
# errors, and the error log must not show a sid); it answers a follow-up (any request with
# sid=) "H\n". Backend B (port 2) is an nginx mock backend (::mock_backends of StickyPages: a
# handshake with mint=SID is answered with an open packet naming SID). The zone "hostile" is
# shared by the upstreams `hostile` (H alone: the handshakes under test), `good_b` (B alone)
# and `all` (B with weight 50, and H), which takes the follow-ups (/socket.io/) and reports
# X-Upstream and X-Status ($socketio_sticky_status).
#
# Where nginx gives up on a response it has started (bogus framing, a close, a reset or a
# timeout mid-body), it closes the client connection; those requests are HTTP/1.0, so that
# what the client got is a whole response to the runner (no chunked framing of nginx's is
# cut). The file runs in HUP mode: zones and backends live on from block to block, and every
# block uses session ids of its own.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use StickyPages;
use Hostile;
use Digest::MD5 qw(md5 md5_hex);
use IO::Compress::Gzip qw(gzip $GzipError);

repeat_each(1);
no_shuffle();
use_hup();
log_level('info');

::fixed_ports('TEST_NGINX_HOSTILE_PORT_', 2);

our $H = "127.0.0.1:$ENV{TEST_NGINX_HOSTILE_PORT_1}";
our $B = "127.0.0.1:$ENV{TEST_NGINX_HOSTILE_PORT_2}";

# ---------------------------------------------------------------------------------------------
# session ids and bodies

# The session id that key KEY stands for.
sub ::sid {
    my $key = shift;
    return "$key-" . substr(md5_hex("hostile $key"), 0, 16);
}

# A sid of LEN bytes that starts with ::sid(KEY).
sub ::long_sid {
    my ($key, $len) = @_;
    my $s = ::sid($key);
    return $s . substr('Kx2Ut0yXQpSn5pAAAB' x (1 + $len / 18), 0, $len - length $s);
}

# The Engine.IO 4 open packet naming SID.
sub ::open_packet {
    my $sid = shift;
    return qq{0{"sid":"$sid","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}};
}

our $BIG = 10 * 1024 * 1024;

# $BIG bytes of pseudo-random garbage (every 64 KiB page differs), and $BIG bytes of printable
# filler (hex digits of the garbage).
our ($GARBAGE, $FILLER);
{
    my ($page, $x) = ('', 'hostile');
    while (length $page < 65536) {
        $x = md5($x);
        $page .= $x;
    }
    $GARBAGE = join '', map { $page ^ (pack('N', $_ * 2654435761 % 4294967296) x 16384) }
                        0 .. $BIG / 65536 - 1;
    $FILLER = unpack 'H*', substr($GARBAGE, 0, $BIG / 2);
}

# A $BIG body: PREFIX, then printable filler.
sub ::big_text {
    my $prefix = shift;
    return $prefix . substr($FILLER, length $prefix);
}

# The $BIG garbage with the open packet of SID in its middle.
sub ::big_garbage {
    my $sid = shift;
    my $p = ::open_packet($sid);
    my $g = $GARBAGE;
    substr($g, $BIG / 2, length $p) = $p;
    return $g;
}

# 4 KiB: an open packet with a "pad" key first, sized so that the closing quote of the sid is
# byte number AT (counting from 1) of the body; then filler.
sub ::edge_body {
    my ($sid, $at) = @_;
    my ($head, $mid) = ('0{"pad":"', '","sid":"');
    my $pad = $at - 1 - length($head) - length($mid) - length($sid);
    die "edge_body: no room\n" if $pad < 0;
    my $b = $head . ('x' x $pad) . $mid . $sid . '","upgrades":[]}' . "\x1e4";
    return $b . substr($FILLER, 0, 4096 - length $b);
}

# Engine.IO 3 payloads with odd length prefixes (TEST 10). sniff.rs's length(): text framing
# takes 1 to 6 decimal digits, not all zeros, then ':'; binary framing 0x00, 1 to 6 bytes 0-9
# (not all zero), then 0xff; what the length says is not checked against the packet.
# [key letter, prefix, learned]
our @EIO3 = (
    ['A', sub { '999999:' }, 1],
    ['B', sub { sprintf '%06d:', length ::open_packet(shift) }, 1],
    ['C', sub { "\x00" . ("\x09" x 6) . "\xff" }, 1],
    ['D', sub { '1234567:' }, 0],
    ['E', sub { '999999999:' }, 0],
    ['F', sub { ('9' x 400) . ':' }, 0],
    ['G', sub { sprintf '%07d:', length ::open_packet(shift) }, 0],
    ['H', sub { '0:' }, 0],
    ['I', sub { '000000:' }, 0],
    ['J', sub { "\x00" . ("\x09" x 7) . "\xff" }, 0],
    ['K', sub { "\x00\x01\x0a\xff" }, 0],
    ['L', sub { "\x00\xff" }, 0],
    ['M', sub { "\x00\x00\x00\xff" }, 0],
);
our %EIO3 = map { $_->[0] => $_ } @EIO3;

sub ::eio3_body {
    my ($f, $sid) = @_;
    return $EIO3{$f}[1]->($sid) . ::open_packet($sid) . '2:40';
}

# JSONP polling bodies with broken escapes (TEST 11): an invalid escape in the packet's JSON
# (\\q in the JSONP string), in the JSONP string itself (\q), \u00zz, an escaped NUL in the
# sid, the string cut, the call without quotes; G: a bad escape after the sid (sniff.rs: the
# sid stays found, as in the shorter prefix before the escape). [key letter, body, learned]
our @JSONP = (
    ['A', sub { qq{___eio[0]("0{\\"sid\\":\\"$_[0]\\\\qZ\\",\\"upgrades\\":[]}");} }, 0],
    ['B', sub { qq{___eio[1]("0{\\"sid\\":\\"$_[0]\\qZ\\",\\"upgrades\\":[]}");} }, 0],
    ['C', sub { qq{___eio[2]("0{\\"sid\\":\\"$_[0]\\u00zz\\",\\"upgrades\\":[]}");} }, 0],
    ['D', sub { qq{___eio[3]("0{\\"sid\\":\\"$_[0]\\\\u0000\\",\\"upgrades\\":[]}");} }, 0],
    ['E', sub { qq|___eio[4]("0{\\"sid\\":\\"$_[0]| }, 0],
    ['F', sub { qq{___eio[5](0{\\"sid\\":\\"$_[0]\\",\\"upgrades\\":[]});} }, 0],
    ['G', sub { qq{___eio[6]("0{\\"sid\\":\\"$_[0]\\",\\"x\\":\\"\\q\\"}");} }, 1],
);
our %JSONP = map { $_->[0] => $_ } @JSONP;

sub ::jsonp_body {
    my ($f, $sid) = @_;
    return $JSONP{$f}[1]->($sid);
}

# The Set-Cookie values of a cookie flood: x1..xN, and io=VALUE at position AT (from 1,
# among the N + 1).
sub ::flood {
    my ($n, $at, $value) = @_;
    my @c = map { "x$_=v$_; Path=/" } 1 .. $n;
    splice @c, $at - 1, 0, "io=$value; Path=/; HttpOnly";
    return @c;
}

# Those cookies as the client receives them, in order (--- raw_response_headers_like).
sub ::flood_headers {
    my $text = join '', map { "Set-Cookie: $_\r\n" } @_;
    return qr/\Q$text\E/;
}

# ---------------------------------------------------------------------------------------------
# raw responses of backend H

sub ::head {
    my ($status, @h) = @_;
    return "HTTP/1.1 $status\r\n" . join('', map { "$_\r\n" } @h) . "\r\n";
}

# 200 with Content-Length: LEN (false: the body's length).
sub ::ok_len {
    my ($body, $len, @h) = @_;
    return ::head('200 OK', 'Content-Type: text/plain; charset=UTF-8',
                  'Content-Length: ' . ($len || length $body), 'Connection: close', @h) . $body;
}

# 200 whose body ends with the connection.
sub ::ok_close {
    return ::head('200 OK', 'Content-Type: text/plain; charset=UTF-8', 'Connection: close')
           . shift;
}

our $CHUNKED = ::head('200 OK', 'Content-Type: text/plain; charset=UTF-8',
                      'Transfer-Encoding: chunked', 'Connection: close');

# Each argument a chunk.
sub ::chunk {
    return join '', map { sprintf("%x\r\n", length) . "$_\r\n" } @_;
}

# The body in chunks of 1, 2, ..., 8191, 1, 2, ... bytes, and the last chunk.
sub ::chunk_all {
    my $body = shift;
    my ($out, $at, $n) = ('', 0, 0);
    while ($at < length $body) {
        $n = $n % 8191 + 1;
        $out .= ::chunk(substr $body, $at, $n);
        $at += $n;
    }
    return "${out}0\r\n\r\n";
}

# Every byte its own chunk.
sub ::bytes {
    return split //, shift;
}

our $GZ;
gzip(\ ::open_packet(::sid('gzA')) => \$GZ) or die "gzip failed: $GzipError\n";

# What H sends for case=NAME: each is called with the sid of m= and the query arguments, and
# returns the parts of the response (strings are written one by one; t/lib/Hostile.pm).
our %Raw = (
    good          => sub { ::ok_len(::open_packet($_[0])) },
    # TEST 1
    trunc_close   => sub { ::ok_close('0{"sid":"' . $_[0]) },
    trunc_chunked => sub { $CHUNKED . ::chunk('0{"si', 'd":"', $_[0]) . "0\r\n\r\n" },
    trunc_len     => sub { ::ok_len('0{"sid":"' . $_[0]) },
    trunc_key     => sub { ::ok_close('0{"si') },
    trunc_after   => sub { ::ok_close('0{"sid":"' . $_[0] . '","upgrades":["webso') },
    # TESTs 2-4
    big_open      => sub { ::ok_len(::big_text(::open_packet($_[0]) . "\x1e4")) },
    big_open_chunked => sub { ($CHUNKED, ::chunk_all(::big_text(::open_packet($_[0]) . "\x1e4"))) },
    big_late      => sub { ::ok_len(::big_late($_[0])) },
    edge          => sub { ::ok_len(::edge_body($_[0], $_[1]{at})) },
    big_garbage   => sub { ::ok_len(::big_garbage($_[0]), 0, 'X-Kind: garbage') },
    big_garbage_chunked => sub { ($CHUNKED, ::chunk_all(::big_garbage($_[0]))) },
    garbage_first => sub { ::ok_len(::garbage_first($_[0])) },
    # TEST 5
    bytes1        => sub { $CHUNKED . ::chunk(::bytes(::open_packet($_[0]))) . "0\r\n\r\n" },
    bytes1_slow   => sub { ($CHUNKED, (map { (::chunk($_), { sleep => 0.002 }) }
                                       ::bytes(::open_packet($_[0]))), "0\r\n\r\n") },
    bytes1_eio3   => sub { $CHUNKED . ::chunk(::bytes(::eio3_body('C', $_[0]))) . "0\r\n\r\n" },
    bytes1_edge   => sub { my $b = ::edge_body($_[0], $_[1]{at});
                           $CHUNKED . ::chunk(::bytes(substr $b, 0, 600), substr($b, 600))
                           . "0\r\n\r\n" },
    # TEST 6
    chunk_bad     => sub { $CHUNKED . ::chunk(::open_packet($_[0])) . "$_[1]{size}\r\nabc\r\n"
                           . "0\r\n\r\n" },
    chunk_nocrlf  => sub { $CHUNKED . ::chunk(::open_packet($_[0])) . "5\r\nabcdeXY0\r\n\r\n" },
    chunk_bad_later => sub { ($CHUNKED . ::chunk(::open_packet($_[0])), { sleep => 0.5 },
                              "zz\r\nabc\r\n0\r\n\r\n") },
    chunk_cut_last => sub { $CHUNKED . ::chunk(::open_packet($_[0])) . "0\r\n" },
    chunk_cut_data => sub { $CHUNKED . "400\r\n" . '0{"sid":"' . $_[0] },
    chunk_short    => sub { $CHUNKED . "400\r\n" . ::open_packet($_[0]) },
    # TEST 7
    gzip          => sub { ::ok_len($GZ, 0, 'Content-Encoding: gzip') },
    gzip_lie      => sub { ::ok_len(::open_packet($_[0]), 0, 'Content-Encoding: gzip') },
    # TESTs 8, 9
    cookies       => sub { ::ok_len('ok', 0, map { "Set-Cookie: $_" }
                                    ::flood($_[1]{n}, $_[1]{at},
                                            $_[1]{len} ? ::long_sid($_[1]{m}, $_[1]{len})
                                                       : $_[0])) },
    # TESTs 10, 11
    eio3          => sub { ::ok_len(::eio3_body($_[1]{f}, $_[0])) },
    jsonp         => sub { ::ok_len(::jsonp_body($_[1]{f}, $_[0])) },
    # TEST 12
    cut_len       => sub { ::ok_len('0{"sid":"' . $_[0], 4000) },
    cut_len_after => sub { ::ok_len(::open_packet($_[0]) . "\x1e4abc", 4000) },
    reset_mid     => sub { (::ok_len('0{"sid":"' . $_[0], 4000), { sleep => 0.3 },
                            { reset => 1 }) },
    hang_head     => sub { (::head('200 OK', 'Content-Length: 100'), { hang => 3 }) },
    hang_mid      => sub { (::ok_len('0{"sid":"' . $_[0], 4000), { hang => 3 }) },
    hang_mid_full => sub { (::ok_len(::open_packet($_[0]), 4000), { hang => 3 }) },
    hang_first    => sub { ({ hang => 3 }) },
    close_first   => sub { () },
);

sub ::big_late {
    return ::big_text('0{"pad":"' . ('x' x 600) . '","sid":"' . $_[0] . '","upgrades":[]}'
                      . "\x1e4");
}

sub ::garbage_first {
    return substr($GARBAGE, 0, 100) . ::open_packet($_[0]) . substr($GARBAGE, 100, 4000);
}

our %Case = map {
    my $f = $Raw{$_};
    ($_ => sub { $f->(::sid($_[0]{m} // ''), $_[0]) });
} keys %Raw;

# ---------------------------------------------------------------------------------------------
# requests and expectations

# A handshake for case CASE with m=KEY and more ARGS, through location LOC: "s" (the module),
# "p" (a plain proxy_pass to H); HTTP/1.0 when V10.
sub ::hs {
    my ($loc, $case, $key, $args, $v10) = @_;
    return "GET /$loc/?EIO=4&transport=polling&case=$case&m=$key" . ($args ? "&$args" : '')
           . ($v10 ? ' HTTP/1.0' : '');
}

# The same hostile handshake through the module and without it.
sub ::both {
    my ($case, $key, $args, $v10) = @_;
    return (::hs('s', $case, $key, $args, $v10), ::hs('p', $case, $key, $args, $v10));
}

sub ::follow {
    return "GET /socket.io/?EIO=4&transport=polling&sid=$_[0]";
}

our $LEARNED_H  = "X-Upstream: $H\nX-Status: learned";
our $LEARNED_B  = "X-Upstream: $B\nX-Status: learned";
our $FALLBACK   = "X-Status: fallback";
our $ANY_FOLLOW = qr/\A[BH]\n\z/;

# The end of every block (number N): a normal handshake from H and one from B, and a
# follow-up of each.
sub ::ok_reqs {
    my $n = shift;
    return (::hs('s', 'good', "ok$n-H"),
            "GET /g/?EIO=4&transport=polling&mint=" . ::sid("ok$n-B"),
            ::follow(::sid("ok$n-H")), ::follow(::sid("ok$n-B")));
}
sub ::ok_bodies {
    my $n = shift;
    return (::open_packet(::sid("ok$n-H")),
            '0{"sid":"' . ::sid("ok$n-B") . '","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
            "H\n", "B\n");
}
sub ::ok_headers { return ("", "", $LEARNED_H, $LEARNED_B) }
sub ::ok_sids {
    my $n = shift;
    return (::sid("ok$n-H"), ::sid("ok$n-B"));
}

# --- no_error_log: nothing severe, and none of the session ids SIDS.
sub ::quiet {
    my $any = join '|', map { quotemeta } @_;
    return ['[alert]', '[crit]', '[emerg]', 'exited on signal', qr/$any/];
}

# --- no_access_log: the handshakes with m=KEY for each KEY never taught a session.
sub ::taught_nothing {
    return [map { qr/[?&]m=\Q$_\E(?:&\S*)? \d+ new$/ } @_];
}

# Length and MD5 of a body (--- response_body_filters).
sub ::digest {
    return length($_[0]) . ' ' . md5_hex($_[0]);
}

# The sessions that TESTs 1-12 teach (from H, and the normal ones from B), and the ids that
# their responses show but must not teach; TEST 13 follows each again.
our @LEARNED_H = (
    (map { ::sid($_) } qw(trE bgA bgB edA b1A b1B b1C b1D b1E bcE bcF bcH ckA ckB
                          ctB)),
    ::long_sid('ckC', 256),
    (map { ::sid("l3$_->[0]") } grep { $_->[2] } @EIO3),
    (map { ::sid("jp$_->[0]") } grep { $_->[2] } @JSONP),
    (map { ::sid("ok$_-H") } 1 .. 12),
);
our @LEARNED_B = map { ::sid("ok$_-B") } 1 .. 12;
our @NOT_LEARNED = (
    (map { ::sid($_) } qw(trA trB trC bgC edB gbA gbB gbC b1F bcA bcB bcC bcD bcG
                          gzA gzB ckF ctA ctC ctE ctF)),
    (map { ::sid("l3$_->[0]") } grep { !$_->[2] } @EIO3),
    (map { ::sid("jp$_->[0]") } grep { !$_->[2] } @JSONP),
);

# Common to every block with a --- config.
my $CommonHttp = <<'_EOC_' . ::mock_backends('TEST_NGINX_HOSTILE_PORT_', 'B');
    access_log off;
    log_format hostile '$uri$is_args$args $status $socketio_sticky_status';
    upstream hostile {
        socketio_sticky zone=hostile:1m;
        server 127.0.0.1:$TEST_NGINX_HOSTILE_PORT_1 max_fails=0;
    }
    upstream good_b {
        socketio_sticky zone=hostile;
        server 127.0.0.1:$TEST_NGINX_HOSTILE_PORT_2;
    }
    upstream all {
        socketio_sticky zone=hostile;
        server 127.0.0.1:$TEST_NGINX_HOSTILE_PORT_2 weight=50;
        server 127.0.0.1:$TEST_NGINX_HOSTILE_PORT_1 max_fails=0;
    }
_EOC_

my $CommonServer = <<'_EOC_';
    access_log logs/access.log hostile;
    proxy_http_version 1.1;
    location /s/ {
        proxy_pass http://hostile/socket.io/;
    }
    location /p/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT_1/socket.io/;
    }
    location /g/ {
        proxy_pass http://good_b/socket.io/;
    }
    location /socket.io/ {
        proxy_pass http://all;
        proxy_next_upstream off;
        add_header X-Upstream $upstream_addr always;
        add_header X-Status $socketio_sticky_status always;
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    return unless defined $block->config;
    $block->set_value(http_config => $CommonHttp . (defined $block->http_config
                                                    ? $block->http_config : ''));
    $block->set_value(config => $CommonServer . $block->config);
});

# The runner warns about a response shorter than its Content-Length; TEST 12 expects that
# (and checks the bytes that came).
{
    my $prev = $SIG{__WARN__};
    $SIG{__WARN__} = sub {
        return if $_[0] =~ /TEST 12: .* - response body truncated: \d+ expected/;
        $prev ? $prev->(@_) : warn @_;
    };
}

::hostile_server($ENV{TEST_NGINX_HOSTILE_PORT_1}, \%Case);

run_tests();

__DATA__

=== TEST 1: truncated JSON open packets pass as they are and teach nothing; cut after the sid's value, the sid is learned
The packet '0{"sid":"<sid>' ended by the connection's close, by chunked framing and by its
Content-Length; one cut inside its first key; one cut after the sid's value (sniff.rs reads
the object only up to that value: learned).
--- config
--- request eval
[::both('trunc_close', 'trA'), ::both('trunc_chunked', 'trB'), ::both('trunc_len', 'trC'),
 ::both('trunc_key', 'trD'), ::both('trunc_after', 'trE'),
 (map { ::follow(::sid($_)) } qw(trA trB trC trE)),
 ::ok_reqs(1)]
--- response_body eval
[(map { ('0{"sid":"' . ::sid($_)) x 2 } qw(trA trB trC)),
 ('0{"si') x 2,
 ('0{"sid":"' . ::sid('trE') . '","upgrades":["webso') x 2,
 ($::ANY_FOLLOW) x 3, "H\n",
 ::ok_bodies(1)]
--- response_headers eval
[("") x 10, ($::FALLBACK) x 3, $::LEARNED_H, ::ok_headers()]
--- no_access_log eval
::taught_nothing(qw(trA trB trC trD))
--- no_error_log eval
::quiet((map { ::sid($_) } qw(trA trB trC trD trE)), ::ok_sids(1))



=== TEST 2: 10 MB bodies: an open packet first is learned (Content-Length, and chunks of 1 to 8191 bytes), a sid past the first 512 bytes is not; the 10 MB arrive intact
--- config
--- request eval
[::both('big_open', 'bgA'), ::both('big_open_chunked', 'bgB'), ::both('big_late', 'bgC'),
 (map { ::follow(::sid($_)) } qw(bgA bgB bgC)),
 ::ok_reqs(2)]
--- response_body_filters eval
[([\&::digest]) x 6, ([]) x 7]
--- response_body eval
[(::digest(::big_text(::open_packet(::sid('bgA')) . "\x1e4"))) x 2,
 (::digest(::big_text(::open_packet(::sid('bgB')) . "\x1e4"))) x 2,
 (::digest(::big_late(::sid('bgC')))) x 2,
 "H\n", "H\n", $::ANY_FOLLOW,
 ::ok_bodies(2)]
--- response_headers eval
[("") x 6, $::LEARNED_H, $::LEARNED_H, $::FALLBACK, ::ok_headers()]
--- no_access_log eval
::taught_nothing('bgC')
--- timeout: 20
--- no_error_log eval
::quiet((map { ::sid($_) } qw(bgA bgB bgC)), ::ok_sids(2))



=== TEST 3: the first 512 bytes: a sid whose closing quote is byte 512 is learned; at byte 513, not
--- config
--- request eval
[::both('edge', 'edA', 'at=512'), ::both('edge', 'edB', 'at=513'),
 ::follow(::sid('edA')), ::follow(::sid('edB')),
 ::ok_reqs(3)]
--- response_body eval
[(::edge_body(::sid('edA'), 512)) x 2, (::edge_body(::sid('edB'), 513)) x 2,
 "H\n", $::ANY_FOLLOW,
 ::ok_bodies(3)]
--- response_headers eval
[("") x 4, $::LEARNED_H, $::FALLBACK, ::ok_headers()]
--- no_access_log eval
::taught_nothing('edB')
--- no_error_log eval
::quiet(::sid('edA'), ::sid('edB'), ::ok_sids(3))



=== TEST 4: 10 MB of garbage with an open packet in its middle (Content-Length, and chunked), an open packet after 100 bytes of garbage: passed intact, not learned
--- config
--- request eval
[::both('big_garbage', 'gbA'), ::both('big_garbage_chunked', 'gbB'),
 ::both('garbage_first', 'gbC'),
 (map { ::follow(::sid($_)) } qw(gbA gbB gbC)),
 ::ok_reqs(4)]
--- response_body_filters eval
[([\&::digest]) x 6, ([]) x 7]
--- response_body eval
[(::digest(::big_garbage(::sid('gbA')))) x 2,
 (::digest(::big_garbage(::sid('gbB')))) x 2,
 (::digest(::garbage_first(::sid('gbC')))) x 2,
 ($::ANY_FOLLOW) x 3,
 ::ok_bodies(4)]
--- response_headers eval
[("X-Kind: garbage") x 2, ("") x 4, ($::FALLBACK) x 3, ::ok_headers()]
--- no_access_log eval
::taught_nothing(qw(gbA gbB gbC))
--- timeout: 20
--- no_error_log eval
::quiet((map { ::sid($_) } qw(gbA gbB gbC)), ::ok_sids(4))



=== TEST 5: 1-byte chunks, collected across buffers: in one write, in one write each 2ms apart (also with proxy_buffering off), binary framing, and the 512-byte edge
--- config
    location /sn/ {
        proxy_pass http://hostile/socket.io/;
        proxy_buffering off;
    }
    location /pn/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT_1/socket.io/;
        proxy_buffering off;
    }
--- request eval
[::both('bytes1', 'b1A'), ::both('bytes1_slow', 'b1B'),
 ::hs('sn', 'bytes1_slow', 'b1C'), ::hs('pn', 'bytes1_slow', 'b1C'),
 ::both('bytes1_eio3', 'b1D'),
 ::both('bytes1_edge', 'b1E', 'at=512'), ::both('bytes1_edge', 'b1F', 'at=513'),
 (map { ::follow(::sid($_)) } qw(b1A b1B b1C b1D b1E b1F)),
 ::ok_reqs(5)]
--- response_body eval
[(map { (::open_packet(::sid($_))) x 2 } qw(b1A b1B b1C)),
 (::eio3_body('C', ::sid('b1D'))) x 2,
 (::edge_body(::sid('b1E'), 512)) x 2,
 (::edge_body(::sid('b1F'), 513)) x 2,
 ("H\n") x 5, $::ANY_FOLLOW,
 ::ok_bodies(5)]
--- response_headers eval
[("") x 12, ($::LEARNED_H) x 5, $::FALLBACK, ::ok_headers()]
--- no_access_log eval
::taught_nothing('b1F')
--- no_error_log eval
::quiet((map { ::sid($_) } qw(b1A b1B b1C b1D b1E b1F)), ::ok_sids(5))



=== TEST 6: bogus chunked framing: nginx's handling decides what the client gets; the sid is learned exactly when the client got the whole open packet
After a first chunk that holds a whole open packet, in the same write: a chunk size that is
not hex, negative, or beyond off_t, or chunk data not followed by CRLF. nginx drops the
response ("upstream sent invalid chunked response"): the client gets nothing at all, and
nothing is learned. The bad size 0.5s after the first chunk: nginx has passed that chunk on,
the client has the open packet, and the sid is learned. The last chunk without its final
CRLF, or a chunk shorter than its size, then EOF: nginx passes on what it got ("upstream
prematurely closed connection"), and the sid is learned when that holds all of it.
--- config
--- request eval
[::both('chunk_bad', 'bcA', 'size=zz', 1),
 ::both('chunk_bad', 'bcB', 'size=-1', 1),
 ::both('chunk_bad', 'bcC', 'size=ffffffffffffffffffff', 1),
 ::both('chunk_nocrlf', 'bcD', '', 1),
 ::both('chunk_bad_later', 'bcE', '', 1),
 ::both('chunk_cut_last', 'bcF', '', 1),
 ::both('chunk_cut_data', 'bcG', '', 1),
 ::both('chunk_short', 'bcH', '', 1),
 (map { ::follow(::sid($_)) } qw(bcA bcB bcC bcD bcE bcF bcG bcH)),
 ::ok_reqs(6)]
--- error_code eval
[("") x 8, (200) x 8, (200) x 8, (200) x 4]
--- response_body eval
[("") x 8,
 (::open_packet(::sid('bcE'))) x 2,
 (::open_packet(::sid('bcF'))) x 2,
 ('0{"sid":"' . ::sid('bcG')) x 2,
 (::open_packet(::sid('bcH'))) x 2,
 ($::ANY_FOLLOW) x 4, "H\n", "H\n", $::ANY_FOLLOW, "H\n",
 ::ok_bodies(6)]
--- response_headers eval
[("") x 16, ($::FALLBACK) x 4, $::LEARNED_H, $::LEARNED_H, $::FALLBACK, $::LEARNED_H,
 ::ok_headers()]
--- no_access_log eval
::taught_nothing(qw(bcA bcB bcC bcD bcG))
--- no_error_log eval
::quiet((map { ::sid($_) } qw(bcA bcB bcC bcD bcE bcF bcG bcH)), ::ok_sids(6))



=== TEST 7: gzip: a gzipped open packet, and a plain one under Content-Encoding: gzip, pass byte for byte and are not learned
--- config
--- request eval
[::both('gzip', 'gzA'), ::both('gzip_lie', 'gzB'),
 ::follow(::sid('gzA')), ::follow(::sid('gzB')),
 ::ok_reqs(7)]
--- more_headers eval
[("Accept-Encoding: gzip") x 4, ("") x 6]
--- response_body eval
[($::GZ) x 2, (::open_packet(::sid('gzB'))) x 2,
 ($::ANY_FOLLOW) x 2,
 ::ok_bodies(7)]
--- response_headers eval
[("Content-Encoding: gzip") x 4, ($::FALLBACK) x 2, ::ok_headers()]
--- no_access_log eval
::taught_nothing(qw(gzA gzB))
--- no_error_log eval
::quiet(::sid('gzA'), ::sid('gzB'), ::ok_sids(7))



=== TEST 8: 2,000 Set-Cookie headers (62 KB) with io= in the middle or last: nginx takes them with proxy_buffer_size 128k, the module learns the sid, the client gets all 2,001 cookies in order
--- config
    location /s/ck/ {
        proxy_pass http://hostile/socket.io/;
        proxy_buffer_size 128k;
        proxy_buffers 4 128k;
        proxy_busy_buffers_size 256k;
    }
    location /p/ck/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT_1/socket.io/;
        proxy_buffer_size 128k;
        proxy_buffers 4 128k;
        proxy_busy_buffers_size 256k;
    }
--- request eval
[::hs('s/ck', 'cookies', 'ckA', 'n=2000&at=1000'), ::hs('p/ck', 'cookies', 'ckA', 'n=2000&at=1000'),
 ::hs('s/ck', 'cookies', 'ckB', 'n=2000&at=2001'), ::hs('p/ck', 'cookies', 'ckB', 'n=2000&at=2001'),
 ::follow(::sid('ckA')), ::follow(::sid('ckB')),
 ::ok_reqs(8)]
--- raw_response_headers_like eval
[(::flood_headers(::flood(2000, 1000, ::sid('ckA')))) x 2,
 (::flood_headers(::flood(2000, 2001, ::sid('ckB')))) x 2,
 ('') x 6]
--- response_body eval
[("ok") x 4, "H\n", "H\n", ::ok_bodies(8)]
--- response_headers eval
[("") x 4, $::LEARNED_H, $::LEARNED_H, ::ok_headers()]
--- no_error_log eval
::quiet(::sid('ckA'), ::sid('ckB'), ::ok_sids(8))



=== TEST 9: io= values of 256 bytes (learned), of 257 bytes and of 10,240 bytes among 2,000 cookies (not learned: a sid is at most 256 bytes); 2,000 cookies in the default proxy_buffer_size: nginx's 502, not learned
A follow-up cannot name a sid longer than 256 bytes (the sid= source ignores it, README), so
the access log tells: a handshake that taught a session is logged "new".
--- config
    location /s/ck/ {
        proxy_pass http://hostile/socket.io/;
        proxy_buffer_size 128k;
        proxy_buffers 4 128k;
        proxy_busy_buffers_size 256k;
    }
    location /p/ck/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT_1/socket.io/;
        proxy_buffer_size 128k;
        proxy_buffers 4 128k;
        proxy_busy_buffers_size 256k;
    }
--- request eval
[::hs('s/ck', 'cookies', 'ckC', 'n=0&at=1&len=256'), ::hs('p/ck', 'cookies', 'ckC', 'n=0&at=1&len=256'),
 ::hs('s/ck', 'cookies', 'ckD', 'n=0&at=1&len=257'), ::hs('p/ck', 'cookies', 'ckD', 'n=0&at=1&len=257'),
 ::hs('s/ck', 'cookies', 'ckE', 'n=2000&at=1000&len=10240'),
 ::hs('p/ck', 'cookies', 'ckE', 'n=2000&at=1000&len=10240'),
 ::both('cookies', 'ckF', 'n=2000&at=1000'),
 ::follow(::long_sid('ckC', 256)), ::follow(::sid('ckF')),
 ::ok_reqs(9)]
--- error_code eval
[(200) x 6, 502, 502, 200, 200, (200) x 4]
--- raw_response_headers_like eval
[(::flood_headers(::flood(0, 1, ::long_sid('ckC', 256)))) x 2,
 (::flood_headers(::flood(0, 1, ::long_sid('ckD', 257)))) x 2,
 (::flood_headers(::flood(2000, 1000, ::long_sid('ckE', 10240)))) x 2,
 ('') x 8]
--- response_body eval
[("ok") x 6, (qr{<title>502 Bad Gateway</title>}) x 2, "H\n", $::ANY_FOLLOW, ::ok_bodies(9)]
--- response_headers eval
[("") x 8, $::LEARNED_H, $::FALLBACK, ::ok_headers()]
--- access_log eval
[qr{^/s/ck/\?EIO=4&transport=polling&case=cookies&m=ckC&n=0&at=1&len=256 200 new$}]
--- no_access_log eval
::taught_nothing(qw(ckD ckE ckF))
--- no_error_log eval
::quiet(::long_sid('ckC', 256), ::long_sid('ckD', 257), ::long_sid('ckE', 10240),
        ::sid('ckF'), ::ok_sids(9))



=== TEST 10: Engine.IO 3 length prefixes: 1 to 6 digits (with leading zeros too) are learned whatever they say; 7 and more digits, zero, and binary length bytes > 9 are not
--- config
--- request eval
[(map { ::both('eio3', "l3$_->[0]", "f=$_->[0]") } @::EIO3),
 (map { ::follow(::sid("l3$_->[0]")) } @::EIO3),
 ::ok_reqs(10)]
--- response_body eval
[(map { (::eio3_body($_->[0], ::sid("l3$_->[0]"))) x 2 } @::EIO3),
 (map { $_->[2] ? "H\n" : $::ANY_FOLLOW } @::EIO3),
 ::ok_bodies(10)]
--- response_headers eval
[("") x (2 * @::EIO3),
 (map { $_->[2] ? $::LEARNED_H : $::FALLBACK } @::EIO3),
 ::ok_headers()]
--- no_access_log eval
::taught_nothing(map { "l3$_->[0]" } grep { !$_->[2] } @::EIO3)
--- no_error_log eval
::quiet((map { ::sid("l3$_->[0]") } @::EIO3), ::ok_sids(10))



=== TEST 11: JSONP with broken escapes (in the packet's JSON, in the JSONP string, \u00zz, an escaped NUL in the sid, cut, no quotes): not learned; a bad escape after the sid does not undo it
The follow-ups also try what a lenient reader might take for the sid of A (the id with "qZ"
or "\qZ" after it).
--- config
--- request eval
[(map { ::both('jsonp', "jp$_->[0]", "f=$_->[0]") } @::JSONP),
 (map { ::follow(::sid("jp$_->[0]")) } @::JSONP),
 ::follow(::sid('jpA') . 'qZ'), ::follow(::sid('jpA') . '%5CqZ'),
 ::ok_reqs(11)]
--- response_body eval
[(map { (::jsonp_body($_->[0], ::sid("jp$_->[0]"))) x 2 } @::JSONP),
 (map { $_->[2] ? "H\n" : $::ANY_FOLLOW } @::JSONP),
 $::ANY_FOLLOW, $::ANY_FOLLOW,
 ::ok_bodies(11)]
--- response_headers eval
[("") x (2 * @::JSONP),
 (map { $_->[2] ? $::LEARNED_H : $::FALLBACK } @::JSONP),
 $::FALLBACK, $::FALLBACK,
 ::ok_headers()]
--- no_access_log eval
::taught_nothing(map { "jp$_->[0]" } grep { !$_->[2] } @::JSONP)
--- no_error_log eval
::quiet((map { ::sid("jp$_->[0]") } @::JSONP), ::ok_sids(11))



=== TEST 12: backends that close, reset or hang mid-response: nginx's own handling decides what the client gets; nothing is learned from bytes the client did not get
Content-Length 4000 and the connection closed inside the sid, or after a whole open packet
(nginx passes on what came: the client gets the packet, and the sid is learned). Headers and
a part of the sid, then a reset; headers, then silence past proxy_read_timeout (1s) after
nothing, a part of the sid, or a whole open packet: nginx sends the client the headers only
(the body bytes it had read never reach the output filters) and nothing is learned, not even
the whole open packet. Silence from the start: nginx's 504; a close before any byte: 502.
The timeout is set in locations /s/t/ and /p/t/ only.
--- config
    location /s/t/ {
        proxy_pass http://hostile/socket.io/;
        proxy_read_timeout 1s;
    }
    location /p/t/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_HOSTILE_PORT_1/socket.io/;
        proxy_read_timeout 1s;
    }
--- request eval
[::both('cut_len', 'ctA', '', 1), ::both('cut_len_after', 'ctB', '', 1),
 ::both('reset_mid', 'ctC', '', 1),
 (map { (::hs('s/t', @$_, '', $_->[0] ne 'hang_first'), ::hs('p/t', @$_, '', $_->[0] ne 'hang_first')) }
      ['hang_head', 'ctD'], ['hang_mid', 'ctE'], ['hang_mid_full', 'ctF'], ['hang_first', 'ctG']),
 ::both('close_first', 'ctH'),
 (map { ::follow(::sid($_)) } qw(ctA ctB ctC ctE ctF)),
 ::ok_reqs(12)]
--- error_code eval
[(200) x 12, 504, 504, 502, 502, (200) x 5, (200) x 4]
--- response_body eval
[('0{"sid":"' . ::sid('ctA')) x 2,
 (::open_packet(::sid('ctB')) . "\x1e4abc") x 2,
 ("") x 8,
 (qr{<title>504 Gateway Time-out</title>}) x 2,
 (qr{<title>502 Bad Gateway</title>}) x 2,
 $::ANY_FOLLOW, "H\n", ($::ANY_FOLLOW) x 3,
 ::ok_bodies(12)]
--- response_headers eval
[("") x 16, $::FALLBACK, $::LEARNED_H, ($::FALLBACK) x 3, ::ok_headers()]
--- no_access_log eval
::taught_nothing(qw(ctA ctC ctD ctE ctF ctG ctH))
--- timeout: 10
--- no_error_log eval
::quiet((map { ::sid($_) } qw(ctA ctB ctC ctD ctE ctF ctG ctH)), ::ok_sids(12))



=== TEST 13: the same nginx (no reload): every session taught above is still learned and routed, none of the others is, and a new handshake is learned
--- request eval
[(map { ::follow($_) } @::LEARNED_H, @::LEARNED_B, @::NOT_LEARNED),
 ::ok_reqs(13)]
--- response_body eval
[("H\n") x @::LEARNED_H, ("B\n") x @::LEARNED_B, ($::ANY_FOLLOW) x @::NOT_LEARNED,
 ::ok_bodies(13)]
--- response_headers eval
[($::LEARNED_H) x @::LEARNED_H, ($::LEARNED_B) x @::LEARNED_B,
 ($::FALLBACK) x @::NOT_LEARNED, ::ok_headers()]
--- no_error_log eval
::quiet(@::LEARNED_H, @::LEARNED_B, @::NOT_LEARNED, ::ok_sids(13))
