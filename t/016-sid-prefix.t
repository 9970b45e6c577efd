# sid_prefix: nginx puts the tag of the server that minted a session id in front of it
# (TAG.SID), routes every request carrying it by the tag, and strips the tag before the
# request reaches a backend, which only ever sees its own SID.
#
#   - the handshake answers, in every form the module learns from: the Engine.IO 4 open packet
#     (plain, with a message after it, the sid not first), Engine.IO 3 text and binary payload
#     framing (lengths that grow by 9 and may gain a digit, non-ASCII text counted in UTF-16
#     units), JSONP of both, an Engine.IO 3 answer that also sets the io cookie; from a backend
#     that sends Content-Length, one that sends chunks (two, split inside the sid, every byte
#     its own chunk, bytes apart in time) and one that ends the body with the connection;
#     with proxy_buffering off, gzip on the front and keepalive connections to the backend;
#     a body that came whole with its header gets its corrected Content-Length, any other
#     loses it (chunked to HTTP/1.1 clients, the whole body then the close to HTTP/1.0 ones),
#     and every Engine.IO 3 length is read back here; the zone learns the
#     untagged sid. Socket.IO 0.9, compressed, unrecognised and non-200 answers, backup
#     servers and upstreams without sid_prefix pass untouched;
#   - the way in: the tag leaves $args and the unparsed URI (proxy_pass with and without a URI
#     part, with $request_uri), for GET, POST and websocket upgrade requests, wherever the sid
#     argument is; $socketio_sticky_prefix holds it; what is not a tag (7 or 9 characters, a
#     byte outside base64url, another separator, nothing after it, an encoded byte, a later
#     sid argument, another argument name) is left as it is, and so is a tag that names no
#     server of any sid_prefix upstream; a known tag leaves requests to any location once an
#     upstream has sid_prefix (a `return` answers before it is taken off);
#   - routing: status `prefix`, over and over to the same server; after route labels, before
#     learned sessions and the route cookie; another sid_prefix upstream's tag counts as none
#     (stripped; the other keys decide); a tampered or random one is an unknown sid; a tagged
#     server that is down, at max_conns or whose port is closed (a retry) gets a substitute,
#     or 502 with `strict`; `drain` keeps its tagged sessions (nginx 1.29.6 and later);
#   - tags are the low 48 bits of the route cookie's peer ids, computed here independently
#     (t/lib/StickyCookie.pm): cookie_key= changes them, two upstreams with one cookie_key
#     agree, reordering and adding server lines keeps them (a reload), a fresh zone does not
#     matter;
#   - SSI subrequests: one subrequest's tag must not route the next one.
#
# Mock backends A, B, C ($TEST_NGINX_PREFIX_PORT_1..3) are nginx servers. A request without a
# sid argument (the handshake) is answered with html/hs/X/$arg_f, one of the files of @Forms
# (backend A) or, without f=, with an Engine.IO 4 open packet naming the sid "X-$arg_m";
# any other request with "X METHOD REQUEST_URI\n": what it received. Nothing listens on port 4
# (server D). Backend H (port 5) is the raw-TCP server of t/lib/Hostile.pm: `case=NAME` picks
# the bytes of its handshake answer (%Case), a request with a sid gets "H\n". Port 6 is the
# slow --- tcp_listen server of the max_conns block. The front server adds X-Status
# ($socketio_sticky_status), X-Prefix ($socketio_sticky_prefix) and X-Upstream.
#
# The file runs in HUP mode: the zone "pfx" keeps its sessions from block to block; every
# block uses session ids of its own.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use StickyPages;
use EngineIOFrames;
use StickyCookie;
use Hostile;
use JSON::PP ();
use bytes ();
use IO::Compress::Gzip qw(gzip $GzipError);
use IO::Uncompress::Gunzip ();

repeat_each(1);
no_shuffle();
use_hup();
log_level('info');
# --- error_log patterns are checked after every request of a block, against what the block
# logged so far.
check_accum_error_log();

::fixed_ports('TEST_NGINX_PREFIX_PORT_', 6);

our %Port = (A => $ENV{TEST_NGINX_PREFIX_PORT_1}, B => $ENV{TEST_NGINX_PREFIX_PORT_2},
             C => $ENV{TEST_NGINX_PREFIX_PORT_3}, D => $ENV{TEST_NGINX_PREFIX_PORT_4},
             H => $ENV{TEST_NGINX_PREFIX_PORT_5}, S => $ENV{TEST_NGINX_PREFIX_PORT_6});

sub ::addr { return "127.0.0.1:$Port{$_[0]}" }

# ---------------------------------------------------------------------------------------------
# tags

my $B64 = join '', 'A' .. 'Z', 'a' .. 'z', '0' .. '9', '-', '_';

# The tag of server X in upstream U (cookie_key=KEY if given): the low 48 bits of X's route
# cookie id, 8 base64url characters, the most significant 6 bits first.
sub ::tag {
    my ($x, $u, $key) = @_;
    my $id = ::cookie_id($key, $u, ::addr($x), ::addr($x));
    my $low = do { no warnings 'portable'; hex substr($id, 4) };
    return join '', map { substr $B64, ($low >> (42 - 6 * $_)) & 63, 1 } 0 .. 7;
}

# "TAG.SID" with X's tag in U.
sub ::tagged { my ($x, $u, $sid, $key) = @_; return ::tag($x, $u, $key) . ".$sid" }

# The tag with its last character changed (still base64url).
sub ::tampered {
    my $t = shift;
    my $c = substr($t, 7, 1) eq 'A' ? 'B' : 'A';
    return substr($t, 0, 7) . $c;
}

# A tag must name one server: no two servers of the file share one in an upstream, and a
# tampered tag names nobody.
for my $u (qw(only_a abc labels ck dn bk retry)) {
    my %seen;
    for my $x (qw(A B C D H S)) {
        my $t = ::tag($x, $u);
        die "tags of $x and $seen{$t} collide in $u\n" if $seen{$t};
        $seen{$t} = $x;
        die "tampered tag of $x in $u is a tag\n" if $seen{ ::tampered($t) };
    }
}

# ---------------------------------------------------------------------------------------------
# handshake bodies

# The Engine.IO 4 open packet naming SID (what a mock answers without f=).
sub ::open4 {
    return qq{0{"sid":"$_[0]","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}};
}

# How many UTF-16 units the UTF-8 bytes are.
sub ::units {
    my $s = shift;
    utf8::decode($s) or die "not UTF-8\n";
    return length($s) + scalar(() = $s =~ /[^\x{0}-\x{ffff}]/g);
}

# Engine.IO 3 text payload framing: "<length in UTF-16 units>:<packet>".
sub ::text_frame { my $p = shift; return ::units($p) . ":$p" }

# An Engine.IO 3 open packet naming SID, padded with PAD bytes.
sub ::open3 {
    my ($sid, $pad) = @_;
    die "negative pad\n" if $pad < 0;
    return qq|0{"sid":"$sid","upgrades":[],"pingInterval":25000,"p":"| . ('x' x $pad) . '"}';
}

# The pad that makes ::open3 of a sid LEN bytes long.
sub ::pad_for { my ($sid, $len) = @_; return $len - length ::open3($sid, 0) }

my $E_ACUTE = "\xc3\xa9";            # U+00E9: 2 bytes, 1 UTF-16 unit
my $GRIN    = "\xf0\x9f\x98\x80";    # U+1F600: 4 bytes, 2 UTF-16 units

# The forms of backend A's handshakes (files html/hs/A/NAME): each a function of the sid, so
# that the body the client must get is the same form of the tagged sid, every length computed
# here again. [NAME, sid, form, Engine.IO 3 framed]
our @Forms = (
    # Engine.IO 4: keys in another order; a message after the open packet
    ['v4k', 'A-v4k-Rt1Yb6MkS0dJAAAB', sub {
        qq{0{"upgrades":[],"pingInterval":25000,"sid":"$_[0]","pingTimeout":20000,"maxPayload":1000000}} }, 0],
    ['v4m', 'A-v4m-Hn5Tq8WzL3xPAAAA', sub { ::open4($_[0]) . "\x1e40" }, 0],
    # Engine.IO 3 text framing: 95 -> 104 (a digit more), 80 -> 89 alone, UTF-16 units
    ['t3', 'A-t3-Wl8lY0pS3mV1AAAA', sub {
        ::text_frame(::open3($_[0], ::pad_for('A-t3-Wl8lY0pS3mV1AAAA', 95))) . '2:40' }, 1],
    ['t3s', 'A-t3s-Qz4Rk9XcE2bHAAAB', sub {
        ::text_frame(::open3($_[0], ::pad_for('A-t3s-Qz4Rk9XcE2bHAAAB', 80))) }, 1],
    ['t3u', 'A-t3u-Ge3Xf9KsU2vMAAAB', sub {
        ::text_frame(qq{0{"n":"$E_ACUTE$GRIN","sid":"$_[0]","upgrades":[],"pingInterval":25000,"pingTimeout":5000,"m":"$GRIN$E_ACUTE"}})
        . '2:40' }, 1],
    # Engine.IO 3 binary framing: 95 -> 104, 80 -> 89
    ['b3', 'A-b3-Nc7Vb1ZtY5wQAAAA', sub {
        ::binary_frame(::open3($_[0], ::pad_for('A-b3-Nc7Vb1ZtY5wQAAAA', 95))) . ::binary_frame('40') }, 1],
    ['b3s', 'A-b3s-Mm4Nn5Oo6Pp7AAAA', sub {
        ::binary_frame(::open3($_[0], ::pad_for('A-b3s-Mm4Nn5Oo6Pp7AAAA', 80))) }, 1],
    # JSONP: Engine.IO 3 (the length counts the unescaped string), Engine.IO 4
    ['jp3', 'A-jp3-Qq8Rr9Ss0Tt1AAAB', sub {
        ::jsonp(0, ::text_frame(::open3($_[0], ::pad_for('A-jp3-Qq8Rr9Ss0Tt1AAAB', 96))) . '2:40') }, 1],
    ['jp4', 'A-jp4-Uu2Vv3Ww4Xx5AAAA', sub { ::jsonp(1, ::open4($_[0]) . "\x1e40") }, 0],
    # Engine.IO 3 that also sets the io cookie (engine.io 3's default)
    ['ck', 'A-ck-Yy6Zz7Aa8Bb9AAAB', sub {
        ::text_frame(::open3($_[0], ::pad_for('A-ck-Yy6Zz7Aa8Bb9AAAB', 90))) . '2:40' }, 1],
);
our %Form = map { $_->[0] => $_ } @Forms;

# The body of form F as backend A sends it, and as the client must get it from upstream U.
sub ::sent { my $f = $Form{ $_[0] }; return $f->[2]->($f->[1]) }
sub ::got  { my ($name, $u) = @_; my $f = $Form{$name}; return $f->[2]->(::tagged('A', $u, $f->[1])) }
sub ::sid_of { return $Form{ $_[0] }[1] }

# Answers that pass untouched.
our $L09  = 'A-l9-4d4f185e96a7b1:60:60:websocket,htmlfile,xhr-polling,jsonp-polling';
our $HTML = '<html><body>0{"sid":"A-html-Ht4Ju6Ki8Lo0AAAA","upgrades":[]}</body></html>';
our $GZ;
gzip(\ ::open4('A-gz-Cc1Dd2Ee3Ff4AAAA') => \$GZ) or die "gzip failed: $GzipError\n";

# Every block's html/: backend A's handshake files.
our @Files = ((map { ["hs/A/$_->[0]", ::sent($_->[0])] } @Forms),
              ['hs/A/l9', $L09], ['hs/A/html', $HTML], ['hs/A/gz', $GZ]);

# ---------------------------------------------------------------------------------------------
# Engine.IO 3 framing read back (--- eio3): the packets of a body, or why it cannot be read.

sub ::text_packets {
    my ($s, $chars) = @_;       # $chars: a character string already (JSONP)
    utf8::decode($s) or return 'not UTF-8' unless $chars;
    my @p;
    while (length $s) {
        $s =~ s/\A([0-9]+)://  or return "no length at '" . substr($s, 0, 12) . "'";
        my ($want, $units, $i) = ($1, 0, 0);
        while ($units < $want && $i < length $s) {
            $units += ord(substr $s, $i, 1) > 0xffff ? 2 : 1;
            $i++;
        }
        return "length $want does not end a character" if $units != $want;
        my $p = substr $s, 0, $i, '';
        utf8::encode($p);
        push @p, $p;
    }
    return \@p;
}

sub ::binary_packets {
    my $b = shift;
    my @p;
    while (length $b) {
        $b =~ s/\A[\x00\x01]// or return 'no packet type';
        $b =~ s/\A([\x00-\x09]{1,6})\xff// or return 'bad length';
        my $n = join '', map { ord } split //, $1;
        return "length $n past the end" if $n > length $b;
        push @p, substr($b, 0, $n, '');
    }
    return \@p;
}

sub ::eio3_packets {
    my $b = shift;
    if ($b =~ /\A___eio\[[0-9]+\]\("(.*)"\);\z/s) {
        my $s = eval { JSON::PP->new->allow_nonref->decode(qq{"$1"}) };
        return 'bad JSONP string' unless defined $s;
        return ::text_packets($s, 1);
    }
    return ::binary_packets($b) if $b =~ /\A[\x00\x01]/;
    return ::text_packets($b, 0);
}

# The packets the body of form F from upstream U must hold.
sub ::packets_of {
    my ($name, $u) = @_;
    my $r = ::eio3_packets(::got($name, $u));
    die "cannot read my own $name: $r\n" unless ref $r;
    return $r;
}

add_response_body_check(sub {
    my ($block, $body, $i, $rep, $dry_run) = @_;
    my $want = $block->eio3;
    return unless defined $want && defined $want->[$i];
    my $name = $block->name;
    SKIP: {
        skip "$name - eio3 skipped due to $dry_run", 1 if $dry_run;
        my $got = ::eio3_packets($body);
        Test::More::is_deeply($got, $want->[$i],
                              "$name - Engine.IO 3 framing read back (req $i)");
    }
});

# ---------------------------------------------------------------------------------------------
# backend H (raw TCP)

sub ::raw_head {
    return "HTTP/1.1 200 OK\r\n" . join('', map { "$_\r\n" } 'Content-Type: text/plain; charset=UTF-8', @_)
           . "\r\n";
}
our $CHUNKED = ::raw_head('Transfer-Encoding: chunked', 'Connection: close');
sub ::chunk { return join '', map { sprintf("%x\r\n", length) . "$_\r\n" } @_ }
sub ::bytes { return split //, shift }

# H's answers: [case, sid, form (a function of the sid), how it is sent]
our @HForms = (
    ['len',   'H-len-Vd2Lp7QxC4tRAAAA', \&::open4,
     sub { ::raw_head('Content-Length: ' . length($_[0]), 'Connection: close') . $_[0] }],
    ['close', 'H-close-Ju9Wk3HnB8yGAAAB', \&::open4,
     sub { ::raw_head('Connection: close') . $_[0] }],
    # Content-Length, and the body 50 ms after the header (not in nginx's first read)
    ['late',  'H-late-Qr5St7Uv9Wx1AAAA', \&::open4,
     sub { (::raw_head('Content-Length: ' . length($_[0]), 'Connection: close'), { sleep => 0.05 }, $_[0]) }],
    # two chunks, split inside the sid
    ['split', 'H-split-Mp2Nq4Or6Ps8AAAB', \&::open4,
     sub { $CHUNKED . ::chunk(substr($_[0], 0, 15), substr($_[0], 15)) . "0\r\n\r\n" }],
    # three chunks: the sid alone in the middle one
    ['alone', 'H-alone-Gg5Hh6Ii7Jj8AAAB', \&::open4,
     sub { my $at = index($_[0], 'H-alone');
           $CHUNKED . ::chunk(substr($_[0], 0, $at), substr($_[0], $at, 24), substr($_[0], $at + 24))
           . "0\r\n\r\n" }],
    ['b1v4',  'H-b1v4-Kk9Ll0Mm1Nn2AAAA', \&::open4,
     sub { $CHUNKED . ::chunk(::bytes($_[0])) . "0\r\n\r\n" }],
    ['b1t3',  'H-b1t3-Oo3Pp4Qq5Rr6AAAA',
     sub { ::text_frame(::open3($_[0], ::pad_for('H-b1t3-Oo3Pp4Qq5Rr6AAAA', 93))) . '2:40' },
     sub { $CHUNKED . ::chunk(::bytes($_[0])) . "0\r\n\r\n" }],
    ['b1b3',  'H-b1b3-Ss7Tt8Uu9Vv0AAAA',
     sub { ::binary_frame(::open3($_[0], ::pad_for('H-b1b3-Ss7Tt8Uu9Vv0AAAA', 93))) . ::binary_frame('40') },
     sub { $CHUNKED . ::chunk(::bytes($_[0])) . "0\r\n\r\n" }],
    ['b1jp3', 'H-b1jp3-Ww1Xx2Yy3Zz4AAAA',
     sub { ::jsonp(3, ::text_frame(::open3($_[0], ::pad_for('H-b1jp3-Ww1Xx2Yy3Zz4AAAA', 92))) . '2:40') },
     sub { $CHUNKED . ::chunk(::bytes($_[0])) . "0\r\n\r\n" }],
    ['b1jp4', 'H-b1jp4-Ab3Cd5Ef7Gh9AAAA', sub { ::jsonp(4, ::open4($_[0]) . "\x1e40") },
     sub { $CHUNKED . ::chunk(::bytes($_[0])) . "0\r\n\r\n" }],
    # every byte its own chunk, 2 ms apart
    ['slow',  'H-slow-Ij2Kl4Mn6Op8AAAA', \&::open4,
     sub { ($CHUNKED, (map { (::chunk($_), { sleep => 0.002 }) } ::bytes($_[0])), "0\r\n\r\n") }],
);
our %HForm = map { $_->[0] => $_ } @HForms;
our %Case = map { my $f = $_; ($f->[0] => sub { $f->[3]->($f->[2]->($f->[1])) }) } @HForms;
# H's answers that come whole with their header (Content-Length, one write).
our %HWhole = (len => 1);

sub ::hsent { my $f = $HForm{ $_[0] }; return $f->[2]->($f->[1]) }
sub ::hgot  { my $f = $HForm{ $_[0] }; return $f->[2]->(::tagged('H', 'only_h', $f->[1])) }
sub ::hsid  { return $HForm{ $_[0] }[1] }

::hostile_server($Port{H}, \%Case);

# ---------------------------------------------------------------------------------------------
# configuration

sub ::backend {
    my ($x, $n) = @_;
    my $hs = ::open4("$x-\$arg_m");
    return <<"_EOC_";
    server {
        listen 127.0.0.1:\$TEST_NGINX_PREFIX_PORT_$n;
        root html;
        default_type text/plain;
        log_not_found off;
        location / {
            add_header X-Backend $x;
            if (\$args !~ "(?:^|&)sid=[^&]") {
                rewrite ^ /hs/$x/\$arg_f last;
            }
            return 200 "$x \$request_method \$request_uri\\n";
        }
        location = /hs/$x/ {
            add_header X-Backend $x;
            return 200 '$hs';
        }
        location /hs/$x/ {
            add_header X-Backend $x;
        }
        location = /hs/$x/gz {
            add_header X-Backend $x;
            add_header Content-Encoding gzip;
        }
        location = /hs/$x/ck {
            add_header X-Backend $x;
            add_header Set-Cookie "io=@{[ ::sid_of('ck') ]}; Path=/; HttpOnly";
        }
    }
_EOC_
}

our $Backends = "    access_log off;\n" . ::backend('A', 1) . ::backend('B', 2) . ::backend('C', 3);

# The upstreams; ZONE replaces the zone's name (a block may start a fresh one), ABC the server
# lines of `abc`.
our $Upstreams = <<'_EOC_';
    upstream only_a {
        socketio_sticky sid_prefix zone=ZONE:1m;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1;
    }
    upstream only_h {
        socketio_sticky sid_prefix zone=ZONE;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_5 max_fails=0;
    }
    upstream only_a_ka {
        socketio_sticky sid_prefix zone=ZONE;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1;
        keepalive 4;
    }
    upstream abc {
        socketio_sticky sid_prefix zone=ZONE;
ABC
    }
    upstream labels {
        socketio_sticky sid_prefix zone=ZONE route=^(b[0-9])-;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_2;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_3;
        socketio_sticky_route b1 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1;
        socketio_sticky_route b2 127.0.0.1:$TEST_NGINX_PREFIX_PORT_2;
        socketio_sticky_route b3 127.0.0.1:$TEST_NGINX_PREFIX_PORT_3;
    }
    upstream ck {
        socketio_sticky sid_prefix zone=ZONE cookie=r;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_2;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_3;
    }
    upstream plain {
        socketio_sticky zone=ZONE;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_2;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_3;
    }
    upstream retry {
        socketio_sticky sid_prefix zone=ZONE;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_4 max_fails=0;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_2;
    }
    upstream retry_strict {
        socketio_sticky sid_prefix zone=ZONE strict;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_4 max_fails=0;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_2;
    }
    upstream dn {
        socketio_sticky sid_prefix zone=ZONE;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1 down;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_2;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_3;
    }
    upstream dn_strict {
        socketio_sticky sid_prefix zone=ZONE strict;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1 down;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_2;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_3;
    }
    upstream bk {
        socketio_sticky sid_prefix zone=ZONE;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_2 down;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_3 backup;
    }
    upstream keyed {
        socketio_sticky sid_prefix zone=ZONE cookie=r cookie_key=s3cret;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_2;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_3;
    }
    upstream keyed2 {
        socketio_sticky sid_prefix zone=ZONE cookie=r2 cookie_key=s3cret;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_3;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1;
    }
_EOC_

our $ABC = join '', map { "        server 127.0.0.1:\$TEST_NGINX_PREFIX_PORT_$_;\n" } 1 .. 3;

sub ::upstreams {
    my (%o) = @_;
    (my $u = $Upstreams) =~ s/ZONE/$o{zone} || 'pfx'/ge;
    $u =~ s/^ABC\n/$o{abc} || $ABC/me;
    return $u;
}

our $Locations = <<'_EOC_';
    proxy_http_version 1.1;
    add_header X-Status $socketio_sticky_status always;
    add_header X-Prefix $socketio_sticky_prefix always;
    add_header X-Upstream $upstream_addr always;
    location /a/ { proxy_pass http://only_a/socket.io/; }
    location /h/ { proxy_pass http://only_h/socket.io/; }
    location /au/ { proxy_pass http://only_a/socket.io/; proxy_buffering off; }
    location /hu/ { proxy_pass http://only_h/socket.io/; proxy_buffering off; }
    location /agz/ {
        proxy_pass http://only_a/socket.io/;
        gzip on;
        gzip_types *;
        gzip_min_length 1;
    }
    location /aka/ {
        proxy_pass http://only_a_ka/socket.io/;
        proxy_set_header Connection "";
    }
    location /socket.io/ { proxy_pass http://abc; }
    location /other/ { proxy_pass http://abc/socket.io/; }
    location /var/ { proxy_pass http://abc$request_uri; }
    location /ws/ {
        proxy_pass http://abc/socket.io/;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
    }
    location /l/ { proxy_pass http://labels/socket.io/; }
    location /ck/ { proxy_pass http://ck/socket.io/; }
    location /plain/ { proxy_pass http://plain/socket.io/; }
    location /retry/ { proxy_pass http://retry/socket.io/; }
    location /retry_strict/ { proxy_pass http://retry_strict/socket.io/; }
    location /dn/ { proxy_pass http://dn/socket.io/; }
    location /dn_strict/ { proxy_pass http://dn_strict/socket.io/; }
    location /bk/ { proxy_pass http://bk/socket.io/; }
    location /keyed/ { proxy_pass http://keyed/socket.io/; }
    location /keyed2/ { proxy_pass http://keyed2/socket.io/; }
    location /echo/ { return 200 "$args|$request_uri|$socketio_sticky_prefix\n"; }
_EOC_

# Every block with a --- config: the backends, the upstreams unless the block gives its own
# (--- http_config), the locations and the handshake files.
add_block_preprocessor(sub {
    my $block = shift;
    return unless defined $block->config;
    $block->set_value(http_config => $Backends . (defined $block->http_config
                                                  ? $block->http_config : ::upstreams()));
    $block->set_value(config => $Locations . $block->config);
    my $own = $block->user_files;
    $block->set_value(user_files => [@Files, ($own ? @$own : ())]);
});

# ---------------------------------------------------------------------------------------------
# requests and expectations

our $Q = 'EIO=4&transport=polling';

# A gzip-compressed body, uncompressed (--- response_body_filters).
sub ::gunzip {
    my $z = shift;
    my $out;
    IO::Uncompress::Gunzip::gunzip(\$z => \$out) or return "gunzip failed: $IO::Uncompress::Gunzip::GunzipError";
    return $out;
}

# What backend X answers a request of METHOD for URI: the request it received.
sub ::echo { my ($x, $uri, $m) = @_; return ($x // 'A') . ' ' . ($m // 'GET') . " $uri\n" }

# The headers of a rewritten handshake answered by X whose body did not come whole with its
# header: Content-Length is gone, the body is sent chunked.
sub ::rewritten { return "!Content-Length\nTransfer-Encoding: chunked\nX-Backend: $_[0]" }

# The headers of a rewritten handshake whose body came whole with its header: the length of
# the rewritten BODY the client gets, not chunked; answered by X (if given).
sub ::announced {
    my ($body, $x) = @_;
    return "Content-Length: " . bytes::length($body) . "\n!Transfer-Encoding"
           . (defined $x ? "\nX-Backend: $x" : '');
}

# The headers of a request routed by X's tag in U.
sub ::by_tag {
    my ($x, $u, $key) = @_;
    return "X-Status: prefix\nX-Prefix: " . ::tag($x, $u, $key) . "\nX-Upstream: " . ::addr($x);
}

# An exact body (as a pattern) for one of several backends: { X => body }.
sub ::one_of {
    my %b = @_;
    my $alt = join '|', map { quotemeta $b{$_} } sort keys %b;
    return qr/\A(?:$alt)\z/;
}

run_tests();

__DATA__

=== TEST 1: Engine.IO 4 handshakes (a backend sending Content-Length): the tag before the sid, Content-Length corrected (the body came with the header); the zone learns the untagged sid; the tagged sid routes by the tag
--- config
--- request eval
["GET /a/?$::Q&m=v4-Lq8WzL3xPAAAA",
 "GET /a/?$::Q&f=v4k",
 "GET /a/?$::Q&f=v4m",
 "GET /a/?$::Q&sid=" . ::tagged('A', 'only_a', 'A-v4-Lq8WzL3xPAAAA'),
 "GET /a/?$::Q&sid=A-v4-Lq8WzL3xPAAAA",
 "GET /a/?$::Q&sid=" . ::sid_of('v4k'),
 "GET /a/?$::Q&sid=" . ::sid_of('v4m')]
--- response_body eval
[::open4(::tagged('A', 'only_a', 'A-v4-Lq8WzL3xPAAAA')),
 ::got('v4k', 'only_a'),
 ::got('v4m', 'only_a'),
 ::echo('A', "/socket.io/?$::Q&sid=A-v4-Lq8WzL3xPAAAA"),
 ::echo('A', "/socket.io/?$::Q&sid=A-v4-Lq8WzL3xPAAAA"),
 ::echo('A', "/socket.io/?$::Q&sid=" . ::sid_of('v4k')),
 ::echo('A', "/socket.io/?$::Q&sid=" . ::sid_of('v4m'))]
--- response_headers eval
[::announced(::open4(::tagged('A', 'only_a', 'A-v4-Lq8WzL3xPAAAA')), 'A'),
 (map { ::announced(::got($_, 'only_a'), 'A') } qw(v4k v4m)),
 ::by_tag('A', 'only_a'),
 ("X-Status: learned\n!X-Prefix") x 3]
--- no_error_log
[error]
[warn]
v4-Lq8WzL3xPAAAA
Rt1Yb6MkS0dJAAAB
Hn5Tq8WzL3xPAAAA



=== TEST 2: Engine.IO 3 handshakes: text framing (95 -> 104, 80 -> 89, UTF-16 units), binary framing, JSONP of both, and an answer that also sets the io cookie: the tag in, every length fixed (read back here), the untagged sid learned
--- config
--- request eval
[(map { "GET /a/?EIO=3&transport=polling&f=$_" } qw(t3 t3s t3u)),
 (map { "GET /a/?EIO=3&transport=polling&b64=0&f=$_" } qw(b3 b3s)),
 "GET /a/?EIO=3&transport=polling&j=0&f=jp3",
 "GET /a/?EIO=4&transport=polling&j=1&f=jp4",
 "GET /a/?EIO=3&transport=polling&f=ck",
 (map { "GET /a/?EIO=3&transport=polling&sid=" . ::sid_of($_) } qw(t3 t3s t3u b3 b3s jp3 jp4 ck)),
 (map { "GET /a/?EIO=3&transport=polling&sid=" . ::tagged('A', 'only_a', ::sid_of($_)) } qw(t3 b3 jp3 ck))]
--- response_body eval
[(map { ::got($_, 'only_a') } qw(t3 t3s t3u b3 b3s jp3 jp4 ck)),
 (map { ::echo('A', "/socket.io/?EIO=3&transport=polling&sid=" . ::sid_of($_)) } qw(t3 t3s t3u b3 b3s jp3 jp4 ck)),
 (map { ::echo('A', "/socket.io/?EIO=3&transport=polling&sid=" . ::sid_of($_)) } qw(t3 b3 jp3 ck))]
--- eio3 eval
[(map { ::packets_of($_, 'only_a') } qw(t3 t3s t3u b3 b3s jp3)), undef,
 ::packets_of('ck', 'only_a')]
--- response_headers eval
[(map { ::announced(::got($_, 'only_a'), 'A') } qw(t3 t3s t3u b3 b3s jp3 jp4 ck)),
 ("X-Status: learned\n!X-Prefix") x 8, (::by_tag('A', 'only_a')) x 4]
--- no_error_log
[error]
[warn]



=== TEST 3: what passes untouched: Socket.IO 0.9, a gzip-compressed open packet, an HTML page, a 404, an upstream without sid_prefix; Content-Length stays where nothing is rewritten
--- config
--- request eval
["GET /a/1/?f=l9&t=1",
 "GET /a/?$::Q&f=gz",
 "GET /a/?$::Q&f=html",
 "GET /a/?$::Q&f=missing",
 "GET /plain/?$::Q&m=pl3-Gg5Hh6Ii7Jj8AAAB"]
--- error_code eval
[200, 200, 200, 404, 200]
--- response_body_like eval
[qr/\A\Q$::L09\E\z/, qr/\A\Q$::GZ\E\z/, qr/\A\Q$::HTML\E\z/, qr/404 Not Found/,
 qr/\A(?:\Q@{[::open4('A-pl3-Gg5Hh6Ii7Jj8AAAB')]}\E|\Q@{[::open4('B-pl3-Gg5Hh6Ii7Jj8AAAB')]}\E|\Q@{[::open4('C-pl3-Gg5Hh6Ii7Jj8AAAB')]}\E)\z/]
--- raw_response_headers_like eval
["\r\nContent-Length: " . length($::L09) . "\r\n",
 "\r\nContent-Length: " . length($::GZ) . "\r\n",
 "\r\n(?:Content-Length: " . length($::HTML) . "|Transfer-Encoding: chunked)\r\n",
 "\r\nContent-Length: [0-9]+\r\n",
 "\r\nContent-Length: " . length(::open4('A-pl3-Gg5Hh6Ii7Jj8AAAB')) . "\r\n"]
--- no_error_log
[error]
[warn]



=== TEST 4: HTTP/1.0 clients get the whole rewritten body: with its corrected Content-Length when it came with its header (Content-Length from the backend), without one, until the close, when it came in 1-byte chunks
--- config
--- request eval
["GET /a/?$::Q&m=h10-Vb7Hk2PdAAAA HTTP/1.0",
 "GET /a/?EIO=3&transport=polling&f=t3 HTTP/1.0",
 "GET /a/?EIO=3&transport=polling&b64=0&f=b3 HTTP/1.0",
 "GET /h/?$::Q&case=b1v4 HTTP/1.0",
 "GET /h/?EIO=3&transport=polling&case=b1t3 HTTP/1.0"]
--- response_body eval
[::open4(::tagged('A', 'only_a', 'A-h10-Vb7Hk2PdAAAA')), ::got('t3', 'only_a'), ::got('b3', 'only_a'),
 ::hgot('b1v4'), ::hgot('b1t3')]
--- eio3 eval
[undef, ::packets_of('t3', 'only_a'), ::packets_of('b3', 'only_a'), undef, ::eio3_packets(::hgot('b1t3'))]
--- response_headers eval
[::announced(::open4(::tagged('A', 'only_a', 'A-h10-Vb7Hk2PdAAAA'))),
 (map { ::announced(::got($_, 'only_a')) } qw(t3 b3)),
 ("!Content-Length\n!Transfer-Encoding") x 2]
--- no_error_log
[error]
[warn]



=== TEST 5: a raw backend: Content-Length (the body with the header, or 50 ms after it), a body ended by the close, two chunks split inside the sid, the sid alone in a chunk, every byte its own chunk (Engine.IO 4, 3 text, 3 binary, JSONP 3 and 4), bytes 2 ms apart
--- config
--- request eval
[(map { "GET /h/?EIO=" . (/3|jp3/ ? 3 : 4) . "&transport=polling&case=$_" } map { $_->[0] } @::HForms),
 (map { "GET /h/?$::Q&sid=" . ::hsid($_->[0]) } @::HForms),
 (map { "GET /h/?$::Q&sid=" . ::tagged('H', 'only_h', ::hsid($_)) } qw(len b1b3 slow))]
--- response_body eval
[(map { ::hgot($_->[0]) } @::HForms), ("H\n") x (@::HForms + 3)]
--- eio3 eval
[(map { $_->[0] =~ /3/ ? ::eio3_packets(::hgot($_->[0])) : undef } @::HForms)]
--- response_headers eval
[(map { $::HWhole{ $_->[0] } ? ::announced(::hgot($_->[0]))
                              : "!Content-Length\nTransfer-Encoding: chunked" } @::HForms),
 ("X-Status: learned\n!X-Prefix") x @::HForms,
 (::by_tag('H', 'only_h')) x 3]
--- timeout: 10
--- no_error_log
[error]
[warn]



=== TEST 6: proxy_buffering off (Content-Length, 1-byte chunks, bytes apart in time), gzip on the front (the client gets the rewritten body compressed), keepalive connections to the backend (one after another, the connection reused)
--- config
--- request eval
["GET /au/?$::Q&m=u6-Kx2Ut0yXQpSn5pAB",
 "GET /au/?EIO=3&transport=polling&f=t3",
 "GET /hu/?$::Q&case=b1v4",
 "GET /hu/?EIO=3&transport=polling&case=b1b3",
 "GET /hu/?EIO=3&transport=polling&j=3&case=b1jp3",
 "GET /hu/?$::Q&case=slow",
 "GET /hu/?$::Q&case=alone HTTP/1.0",
 "GET /agz/?$::Q&m=z6-Wl8lY0pS3mV1AAAA",
 "GET /agz/?EIO=3&transport=polling&b64=0&f=b3",
 "GET /aka/?$::Q&m=k6a-Qz4Rk9XcE2bHAAAB",
 "GET /aka/?EIO=3&transport=polling&f=t3s",
 "GET /aka/?$::Q&m=k6b-Qz4Rk9XcE2bHAAAB",
 "GET /aka/?EIO=3&transport=polling&j=0&f=jp3",
 "GET /aka/?$::Q&sid=" . ::tagged('A', 'only_a_ka', 'A-k6a-Qz4Rk9XcE2bHAAAB'),
 "GET /aka/?$::Q&sid=A-k6b-Qz4Rk9XcE2bHAAAB"]
--- more_headers eval
[("") x 7, ("Accept-Encoding: gzip") x 2, ("") x 6]
--- response_body_filters eval
[([]) x 7, ([\&::gunzip]) x 2, ([]) x 6]
--- response_body eval
[::open4(::tagged('A', 'only_a', 'A-u6-Kx2Ut0yXQpSn5pAB')), ::got('t3', 'only_a'),
 ::hgot('b1v4'), ::hgot('b1b3'), ::hgot('b1jp3'), ::hgot('slow'), ::hgot('alone'),
 ::open4(::tagged('A', 'only_a', 'A-z6-Wl8lY0pS3mV1AAAA')), ::got('b3', 'only_a'),
 ::open4(::tagged('A', 'only_a_ka', 'A-k6a-Qz4Rk9XcE2bHAAAB')), ::got('t3s', 'only_a_ka'),
 ::open4(::tagged('A', 'only_a_ka', 'A-k6b-Qz4Rk9XcE2bHAAAB')), ::got('jp3', 'only_a_ka'),
 ::echo('A', "/socket.io/?$::Q&sid=A-k6a-Qz4Rk9XcE2bHAAAB"),
 ::echo('A', "/socket.io/?$::Q&sid=A-k6b-Qz4Rk9XcE2bHAAAB")]
--- eio3 eval
[undef, ::packets_of('t3', 'only_a'), undef, ::eio3_packets(::hgot('b1b3')), ::eio3_packets(::hgot('b1jp3')),
 undef, undef, undef, ::packets_of('b3', 'only_a'), undef, ::packets_of('t3s', 'only_a_ka'), undef,
 ::packets_of('jp3', 'only_a_ka')]
--- response_headers eval
[::announced(::open4(::tagged('A', 'only_a', 'A-u6-Kx2Ut0yXQpSn5pAB')), 'A'),
 ::announced(::got('t3', 'only_a'), 'A'),
 ("!Content-Length\nTransfer-Encoding: chunked") x 4,
 "!Content-Length\n!Transfer-Encoding",
 ("!Content-Length\nTransfer-Encoding: chunked\nContent-Encoding: gzip\nX-Backend: A") x 2,
 ::announced(::open4(::tagged('A', 'only_a_ka', 'A-k6a-Qz4Rk9XcE2bHAAAB')), 'A'),
 ::announced(::got('t3s', 'only_a_ka'), 'A'),
 ::announced(::open4(::tagged('A', 'only_a_ka', 'A-k6b-Qz4Rk9XcE2bHAAAB')), 'A'),
 ::announced(::got('jp3', 'only_a_ka'), 'A'),
 ::by_tag('A', 'only_a_ka'), "X-Status: learned\n!X-Prefix"]
--- timeout: 10
--- no_error_log
[error]
[warn]



=== TEST 7: three servers: each handshake carries the tag of the server that minted it; each tag goes to its server, over and over
--- config
--- request eval
[(map { "GET /socket.io/?$::Q&m=h6-$_" } 1 .. 3),
 (map { my $x = $_; map { "GET /socket.io/?$::Q&t=$_&sid=" . ::tagged($x, 'abc', "$x-h6-1") } 1 .. 2 } qw(B C A B A C))]
--- response_body eval
[(map { my $n = $_; ::one_of(map { ($_ => ::open4(::tagged($_, 'abc', "$_-h6-$n"))) } qw(A B C)) } 1 .. 3),
 (map { my $x = $_; map { ::echo($x, "/socket.io/?$::Q&t=$_&sid=$x-h6-1") } 1 .. 2 } qw(B C A B A C))]
--- response_headers eval
# (one length for all three: the tags are alike)
[(map { ::announced(::open4(::tagged('A', 'abc', "A-h6-$_"))) } 1 .. 3),
 (map { (::by_tag($_, 'abc')) x 2 } qw(B C A B A C))]
--- no_error_log
[error]
[warn]



=== TEST 8: the backend never sees the tag: proxy_pass with and without a URI part and with $request_uri, GET, POST and a websocket upgrade, the sid first, in the middle or last; the first non-empty sid argument
--- config
--- request eval
["GET /socket.io/?$::Q&sid=" . ::tagged('B', 'abc', 's7-get'),
 "GET /other/?$::Q&sid=" . ::tagged('B', 'abc', 's7-other') . "&t=Nx1",
 "GET /var/?sid=" . ::tagged('C', 'abc', 's7-var') . "&$::Q",
 "POST /socket.io/?$::Q&sid=" . ::tagged('A', 'abc', 's7-post') . "\n4hello",
 "POST /other/?sid=" . ::tagged('C', 'abc', 's7-post2') . "&$::Q\n4hello",
 "GET /ws/?EIO=4&transport=websocket&sid=" . ::tagged('B', 'abc', 's7-ws'),
 "GET /socket.io/?EIO=4&transport=websocket&sid=" . ::tagged('C', 'abc', 's7-ws2'),
 "GET /socket.io/?$::Q&sid=&sid=" . ::tagged('A', 'abc', 's7-second') . "&x=1",
 "GET /socket.io/?sid=" . ::tagged('B', 'abc', 's7-only')]
--- more_headers eval
["", "", "", "Content-Type: text/plain;charset=UTF-8", "Content-Type: text/plain;charset=UTF-8",
 "Upgrade: websocket\nConnection: Upgrade, close\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13",
 "Upgrade: websocket\nConnection: Upgrade, close\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13",
 "", ""]
--- response_body eval
[::echo('B', "/socket.io/?$::Q&sid=s7-get"),
 ::echo('B', "/socket.io/?$::Q&sid=s7-other&t=Nx1"),
 ::echo('C', "/var/?sid=s7-var&$::Q"),
 ::echo('A', "/socket.io/?$::Q&sid=s7-post", 'POST'),
 ::echo('C', "/socket.io/?sid=s7-post2&$::Q", 'POST'),
 ::echo('B', "/socket.io/?EIO=4&transport=websocket&sid=s7-ws"),
 ::echo('C', "/socket.io/?EIO=4&transport=websocket&sid=s7-ws2"),
 ::echo('A', "/socket.io/?$::Q&sid=&sid=s7-second&x=1"),
 ::echo('B', "/socket.io/?sid=s7-only")]
--- response_headers eval
[::by_tag('B', 'abc'), ::by_tag('B', 'abc'), ::by_tag('C', 'abc'), ::by_tag('A', 'abc'),
 ::by_tag('C', 'abc'), ::by_tag('B', 'abc'), ::by_tag('C', 'abc'), ::by_tag('A', 'abc'),
 ::by_tag('B', 'abc')]
--- no_error_log
[error]
[warn]



=== TEST 9: precedence: a learned session of A, tagged with B's tag, goes to B (the tag before the zone); a route label beats the tag; the tag beats the route cookie; the untagged sid is still A's
--- config
--- request eval
["GET /a/?$::Q&m=p8-Kx2Ut0yXQpSn5pAB",
 "GET /socket.io/?$::Q&sid=A-p8-Kx2Ut0yXQpSn5pAB",
 "GET /socket.io/?$::Q&sid=" . ::tagged('B', 'abc', 'A-p8-Kx2Ut0yXQpSn5pAB'),
 "GET /socket.io/?$::Q&sid=" . ::tagged('C', 'abc', 'A-p8-Kx2Ut0yXQpSn5pAB'),
 "GET /socket.io/?$::Q&sid=A-p8-Kx2Ut0yXQpSn5pAB",
 "GET /l/?$::Q&sid=" . ::tagged('A', 'labels', 'b2-p8'),
 "GET /l/?$::Q&sid=" . ::tagged('A', 'labels', 'zz-p8'),
 "GET /l/?$::Q&sid=" . ::tagged('C', 'labels', 'b1-p8'),
 "GET /ck/?$::Q&sid=" . ::tagged('A', 'ck', 'x-p8'),
 "GET /ck/?$::Q&sid=x-p8"]
--- more_headers eval
[("") x 8, ("Cookie: r=" . ::cookie_id(undef, 'ck', ::addr('C'), ::addr('C'))) x 2]
--- response_body eval
[::open4(::tagged('A', 'only_a', 'A-p8-Kx2Ut0yXQpSn5pAB')),
 ::echo('A', "/socket.io/?$::Q&sid=A-p8-Kx2Ut0yXQpSn5pAB"),
 ::echo('B', "/socket.io/?$::Q&sid=A-p8-Kx2Ut0yXQpSn5pAB"),
 ::echo('C', "/socket.io/?$::Q&sid=A-p8-Kx2Ut0yXQpSn5pAB"),
 ::echo('A', "/socket.io/?$::Q&sid=A-p8-Kx2Ut0yXQpSn5pAB"),
 ::echo('B', "/socket.io/?$::Q&sid=b2-p8"),
 ::echo('A', "/socket.io/?$::Q&sid=zz-p8"),
 ::echo('A', "/socket.io/?$::Q&sid=b1-p8"),
 ::echo('A', "/socket.io/?$::Q&sid=x-p8"),
 ::echo('C', "/socket.io/?$::Q&sid=x-p8")]
--- response_headers eval
[::announced(::open4(::tagged('A', 'only_a', 'A-p8-Kx2Ut0yXQpSn5pAB')), 'A'),
 "X-Status: learned\n!X-Prefix",
 ::by_tag('B', 'abc'), ::by_tag('C', 'abc'),
 "X-Status: learned\n!X-Prefix",
 "X-Status: route\nX-Prefix: " . ::tag('A', 'labels'),
 ::by_tag('A', 'labels'),
 "X-Status: route\nX-Prefix: " . ::tag('C', 'labels'),
 ::by_tag('A', 'ck'),
 "X-Status: cookie\n!X-Prefix"]
--- no_error_log
[error]
[warn]



=== TEST 10: another sid_prefix upstream's tag: stripped, this upstream's other keys decide; a tag of no server (tampered, nobody's): left as it is, as any unknown sid; not a tag (7 or 9 characters, a byte outside base64url, another separator, nothing after it, percent-encoded, a later sid, another name): left as it is
--- config
--- request eval
my $L = 'A-p9-Wl8lY0pS3mV1AAAA';
my $tb = ::tag('B', 'abc');
["GET /a/?$::Q&m=p9-Wl8lY0pS3mV1AAAA",
 # another upstream's tag: stripped, the learned session decides
 "GET /socket.io/?$::Q&sid=" . ::tag('B', 'labels') . ".$L",
 "GET /socket.io/?$::Q&sid=" . ::tag('A', 'only_a') . ".$L",
 # a tag of no server: untouched (an unknown sid: round robin)
 "GET /socket.io/?$::Q&sid=" . ::tampered($tb) . ".$L",
 "GET /socket.io/?$::Q&sid=AAAAAAAA.$L",
 "GET /socket.io/?$::Q&sid=" . ::tag('H', 'only_h') . ".u9-unknown&device_id=dev-9",
 # not a tag: untouched (an unknown sid: round robin)
 "GET /socket.io/?$::Q&sid=" . substr($tb, 0, 7) . ".$L",
 "GET /socket.io/?$::Q&sid=${tb}x.$L",
 "GET /socket.io/?$::Q&sid=" . substr($tb, 0, 7) . "+.$L",
 "GET /socket.io/?$::Q&sid=" . substr($tb, 0, 7) . "=.$L",
 "GET /socket.io/?$::Q&sid=$tb-$L",
 "GET /socket.io/?$::Q&sid=$tb:$L",
 "GET /socket.io/?$::Q&sid=$tb%2E$L",
 "GET /socket.io/?$::Q&sid=%" . sprintf('%02X', ord $tb) . substr($tb, 1) . ".$L",
 "GET /socket.io/?$::Q&sid=$tb.",
 # untouched: the sid nginx reads ($arg_sid, case-insensitive) is SID's, the tag is only
 # taken off `sid` (an Engine.IO server reads that one)
 "GET /socket.io/?$::Q&SID=$tb.$L&sid=$L",
 # untouched, and the learned (untagged) sid decides
 "GET /socket.io/?$::Q&sid=$L&sid=$tb.$L",
 "GET /socket.io/?$::Q&xsid=$tb.$L&sid=$L"]
--- response_body eval
my $L = 'A-p9-Wl8lY0pS3mV1AAAA';
my $tb = ::tag('B', 'abc');
my $any = sub { my $q = "/socket.io/?$::Q&sid=$_[0]"; ::one_of(map { ($_ => ::echo($_, $q)) } qw(A B C)) };
[::open4(::tagged('A', 'only_a', $L)),
 (::echo('A', "/socket.io/?$::Q&sid=$L")) x 2,
 $any->(::tampered($tb) . ".$L"),
 $any->("AAAAAAAA.$L"),
 qr/\A[ABC] GET \Q\/socket.io\/?$::Q&sid=u9-unknown&device_id=dev-9\E\n\z/,
 $any->(substr($tb, 0, 7) . ".$L"),
 $any->("${tb}x.$L"),
 $any->(substr($tb, 0, 7) . "+.$L"),
 $any->(substr($tb, 0, 7) . "=.$L"),
 $any->("$tb-$L"),
 $any->("$tb:$L"),
 $any->("$tb%2E$L"),
 $any->('%' . sprintf('%02X', ord $tb) . substr($tb, 1) . ".$L"),
 $any->("$tb."),
 ::one_of(map { ($_ => ::echo($_, "/socket.io/?$::Q&SID=$tb.$L&sid=$L")) } qw(A B C)),
 ::echo('A', "/socket.io/?$::Q&sid=$L&sid=$tb.$L"),
 ::echo('A', "/socket.io/?$::Q&xsid=$tb.$L&sid=$L")]
--- response_headers eval
my $tb = ::tag('B', 'abc');
[::announced(::open4(::tagged('A', 'only_a', 'A-p9-Wl8lY0pS3mV1AAAA')), 'A'),
 "X-Status: learned\nX-Prefix: " . ::tag('B', 'labels'),
 "X-Status: learned\nX-Prefix: " . ::tag('A', 'only_a'),
 ("X-Status: fallback\n!X-Prefix") x 2,
 "X-Status: device_id\nX-Prefix: " . ::tag('H', 'only_h'),
 ("X-Status: fallback\n!X-Prefix") x 10,
 ("X-Status: learned\n!X-Prefix") x 2]
--- no_error_log
[error]
[warn]



=== TEST 11: the tagged server's port is closed: the retry goes to another server with the stripped sid (fallback, or rebound with a device id); with strict, 502 and no second try
--- config
--- request eval
["GET /retry/?$::Q&sid=" . ::tagged('D', 'retry', 'r10-one'),
 "GET /retry/?$::Q&sid=" . ::tagged('D', 'retry', 'r10-two') . "&device_id=dev-10",
 "GET /retry_strict/?$::Q&sid=" . ::tagged('D', 'retry_strict', 'r10-three'),
 "GET /retry_strict/?$::Q&sid=" . ::tagged('B', 'retry_strict', 'r10-four')]
--- error_code eval
[200, 200, 502, 200]
--- response_body_like eval
[qr/\A[AB] GET \/socket\.io\/\?\Q$::Q\E&sid=r10-one\n\z/,
 qr/\A[AB] GET \/socket\.io\/\?\Q$::Q\E&sid=r10-two&device_id=dev-10\n\z/,
 qr/502 Bad Gateway/,
 qr/\AB GET \/socket\.io\/\?\Q$::Q\E&sid=r10-four\n\z/]
--- response_headers eval
["X-Status: fallback\nX-Prefix: " . ::tag('D', 'retry'),
 "X-Status: rebound\nX-Prefix: " . ::tag('D', 'retry'),
 "X-Status: strict\nX-Prefix: " . ::tag('D', 'retry_strict'),
 ::by_tag('B', 'retry_strict')]
--- raw_response_headers_like eval
[qr/\r\nX-Upstream: \Q@{[::addr('D')]}\E, (?:\Q@{[::addr('A')]}\E|\Q@{[::addr('B')]}\E)\r\n/,
 qr/\r\nX-Upstream: \Q@{[::addr('D')]}\E, (?:\Q@{[::addr('A')]}\E|\Q@{[::addr('B')]}\E)\r\n/,
 qr/\r\nX-Upstream: \Q@{[::addr('D')]}\E, retry_strict\r\n/,
 qr/\r\nX-Upstream: \Q@{[::addr('B')]}\E\r\n/]
--- error_log eval
qr/connect\(\) failed \(111: Connection refused\)/
--- no_error_log
[warn]



=== TEST 12: a tagged server marked down: another server (fallback, rebound with a device id), 502 with strict; backup servers have no tag: their handshakes are not rewritten, a tag computed for one is no tag (left as it is)
--- config
--- request eval
["GET /dn/?$::Q&sid=" . ::tagged('A', 'dn', 'd11-one'),
 "GET /dn/?$::Q&sid=" . ::tagged('A', 'dn', 'd11-two') . "&device_id=dev-11",
 "GET /dn/?$::Q&sid=" . ::tagged('C', 'dn', 'd11-three'),
 "GET /dn_strict/?$::Q&sid=" . ::tagged('A', 'dn_strict', 'd11-four'),
 "GET /bk/?$::Q&m=bk11-Ht4Ju6Ki8Lo0AAAA",
 "GET /bk/?$::Q&sid=" . ::tagged('C', 'bk', 'C-bk11-Ht4Ju6Ki8Lo0AAAA'),
 "GET /bk/?$::Q&sid=" . ::tagged('B', 'bk', 'C-bk11-Ht4Ju6Ki8Lo0AAAA')]
--- error_code eval
[200, 200, 200, 502, 200, 200, 200]
--- response_body_like eval
[qr/\A[BC] GET \/socket\.io\/\?\Q$::Q\E&sid=d11-one\n\z/,
 qr/\A[BC] GET \/socket\.io\/\?\Q$::Q\E&sid=d11-two&device_id=dev-11\n\z/,
 qr/\AC GET \/socket\.io\/\?\Q$::Q\E&sid=d11-three\n\z/,
 qr/502 Bad Gateway/,
 qr/\A\Q@{[::open4('C-bk11-Ht4Ju6Ki8Lo0AAAA')]}\E\z/,
 qr/\AC GET \/socket\.io\/\?\Q$::Q\E&sid=\Q@{[::tagged('C', 'bk', 'C-bk11-Ht4Ju6Ki8Lo0AAAA')]}\E\n\z/,
 qr/\AC GET \/socket\.io\/\?\Q$::Q\E&sid=C-bk11-Ht4Ju6Ki8Lo0AAAA\n\z/]
--- response_headers eval
["X-Status: fallback\nX-Prefix: " . ::tag('A', 'dn'),
 "X-Status: rebound\nX-Prefix: " . ::tag('A', 'dn'),
 ::by_tag('C', 'dn'),
 "X-Status: strict\nX-Prefix: " . ::tag('A', 'dn_strict'),
 "Content-Length: " . length(::open4('C-bk11-Ht4Ju6Ki8Lo0AAAA')) . "\n!Transfer-Encoding\nX-Backend: C",
 "X-Status: fallback\n!X-Prefix",
 "X-Status: fallback\nX-Prefix: " . ::tag('B', 'bk')]
--- no_error_log
[warn]



=== TEST 13: a tagged server at max_conns: while a slow request holds S's one connection, the second request of S's session goes to A with the stripped sid
--- http_config eval
::upstreams() . <<'_EOC_'
    log_subrequest on;
    log_format mc '$uri?$args $status $upstream_addr $socketio_sticky_status';
    upstream mc {
        socketio_sticky sid_prefix zone=pfx;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_6 max_conns=1;
    }
_EOC_
--- config
    access_log logs/access.log mc;
    location = /page.html { ssi on; }
    location /mc/ { proxy_pass http://mc/socket.io/; }
--- user_files eval
[["page.html", qq{<!--# include virtual="/mc/?sid=} . ::tagged('S', 'mc', 'slow') . qq{" -->}
               . qq{<!--# include virtual="/mc/?sid=} . ::tagged('S', 'mc', 'second') . qq{" -->}]]
--- tcp_listen: $TEST_NGINX_PREFIX_PORT_6
--- tcp_reply_delay: 1s
--- tcp_reply eval
"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nSLOW\n"
--- request
GET /page.html
--- response_body eval
"SLOW\n" . ::echo('A', '/socket.io/?sid=second')
--- access_log eval
[qr{^/mc/\?sid=slow 200 \Q@{[::addr('S')]}\E prefix$},
 qr{^/mc/\?sid=second 200 \Q@{[::addr('A')]}\E fallback$}]



=== TEST 14: cookie_key= makes the tags: the handshake carries the keyed tag of its server, keyed tags route, the tags of the upstream's name are no tags (left as they are); another upstream with the same key and other server lines agrees
--- config
--- request eval
["GET /keyed/?$::Q&m=k13-Nc7Vb1ZtY5wQAAAA",
 "GET /keyed/?$::Q&sid=" . ::tagged('C', 'keyed', 'k13-two', 's3cret'),
 "GET /keyed/?$::Q&sid=" . ::tagged('A', 'keyed', 'k13-three', 's3cret'),
 "GET /keyed/?$::Q&sid=" . ::tagged('C', 'keyed', 'k13-four'),
 "GET /keyed2/?$::Q&sid=" . ::tagged('A', 'keyed2', 'k13-five', 's3cret'),
 "GET /keyed2/?$::Q&sid=" . ::tagged('C', 'keyed2', 'k13-six', 's3cret'),
 "GET /keyed2/?$::Q&sid=" . ::tagged('B', 'keyed2', 'k13-seven', 's3cret') . "&device_id=dev-13",
 "GET /keyed/?$::Q&m=k13-Ge3Xf9KsU2vMAAAB"]
--- more_headers eval
["Cookie: r=" . ::cookie_id('s3cret', undef, ::addr('B'), ::addr('B')), ("") x 7]
--- response_body_like eval
[qr/\A\Q@{[::open4(::tagged('B', 'keyed', 'B-k13-Nc7Vb1ZtY5wQAAAA', 's3cret'))]}\E\z/,
 qr/\A\Q@{[::echo('C', "\/socket.io\/?$::Q&sid=k13-two")]}\E\z/,
 qr/\A\Q@{[::echo('A', "\/socket.io\/?$::Q&sid=k13-three")]}\E\z/,
 qr/\A[ABC] \QGET \/socket.io\/?$::Q&sid=@{[::tagged('C', 'keyed', 'k13-four')]}\E\n\z/,
 qr/\A\Q@{[::echo('A', "\/socket.io\/?$::Q&sid=k13-five")]}\E\z/,
 qr/\A\Q@{[::echo('C', "\/socket.io\/?$::Q&sid=k13-six")]}\E\z/,
 qr/\A[AC] \QGET \/socket.io\/?$::Q&sid=k13-seven&device_id=dev-13\E\n\z/,
 ::one_of(map { ($_ => ::open4(::tagged($_, 'keyed', "$_-k13-Ge3Xf9KsU2vMAAAB", 's3cret'))) } qw(A B C))]
--- response_headers eval
[::announced(::open4(::tagged('B', 'keyed', 'B-k13-Nc7Vb1ZtY5wQAAAA', 's3cret')), 'B'),
 ::by_tag('C', 'keyed', 's3cret'),
 ::by_tag('A', 'keyed', 's3cret'),
 "X-Status: fallback\n!X-Prefix",
 ::by_tag('A', 'keyed2', 's3cret'),
 ::by_tag('C', 'keyed2', 's3cret'),
 "X-Status: device_id\nX-Prefix: " . ::tag('B', 'keyed2', 's3cret'),
 ::announced(::open4(::tagged('A', 'keyed', 'A-k13-Ge3Xf9KsU2vMAAAB', 's3cret')))]
--- raw_response_headers_like eval
[qr/\A(?!.*Set-Cookie)/s, ("") x 6,
 CORE::join('|', map { my $id = ::cookie_id('s3cret', undef, ::addr($_), ::addr($_));
                       "X-Backend: $_\r\n(?:[^\r]*\r\n)*?Set-Cookie: r=$id; Path=/; HttpOnly\r\n" } qw(A B C))]
--- no_error_log
[error]
[warn]



=== TEST 15: SSI subrequests share the request's variables: a tagged subrequest must not route the untagged ones after it
--- config
    log_subrequest on;
    access_log logs/access.log sub;
    location = /page.html { ssi on; }
--- http_config eval
::upstreams() . "    log_format sub '\$uri?\$args \$status \$socketio_sticky_status';\n"
--- user_files eval
my $L = 'A-s14-Qz4Rk9XcE2bHAAAB';
[["page.html", ::page("/a/?$::Q&m=s14-Qz4Rk9XcE2bHAAAB",
                      "/socket.io/?sid=" . ::tagged('B', 'abc', 's14-one'),
                      "/socket.io/?sid=$L",
                      "/socket.io/?sid=" . ::tagged('C', 'abc', 's14-two'),
                      "/socket.io/?sid=$L&device_id=dev-14")]]
--- request
GET /page.html
--- response_body eval
my $L = 'A-s14-Qz4Rk9XcE2bHAAAB';
::open4(::tagged('A', 'only_a', $L))
 . ::echo('B', '/socket.io/?sid=s14-one') . ::echo('A', "/socket.io/?sid=$L")
 . ::echo('C', '/socket.io/?sid=s14-two') . ::echo('A', "/socket.io/?sid=$L&device_id=dev-14")
--- access_log eval
my $L = 'A-s14-Qz4Rk9XcE2bHAAAB';
[qr{^/a/\?\Q$::Q\E&m=s14-Qz4Rk9XcE2bHAAAB 200 new$},
 qr{^/socket\.io/\?sid=s14-one 200 prefix$}, qr{^/socket\.io/\?sid=\Q$L\E 200 learned$},
 qr{^/socket\.io/\?sid=s14-two 200 prefix$}, qr{^/socket\.io/\?sid=\Q$L\E&device_id=dev-14 200 learned$}]
--- no_error_log
[error]
[warn]



=== TEST 16: the tag leaves every request of the http block once an upstream has sid_prefix, wherever it goes (a plain proxy_pass to a backend, $request_uri); an upstream without sid_prefix ignores it (the learned session decides); `return` answers before the tag is taken off
--- config
    location /direct/ { proxy_pass http://127.0.0.1:$TEST_NGINX_PREFIX_PORT_2/socket.io/; }
--- request eval
my $L = 'A-g15-Mm4Nn5Oo6Pp7AAAB';
["GET /a/?$::Q&m=g15-Mm4Nn5Oo6Pp7AAAB",
 "GET /direct/?$::Q&sid=" . ::tagged('C', 'abc', 'g15-x') . "&t=1",
 "GET /direct/?$::Q&sid=" . substr(::tag('C', 'abc'), 0, 7) . ".g15-y&t=1",
 "GET /plain/?$::Q&sid=" . ::tagged('B', 'abc', $L),
 "GET /echo/?$::Q&sid=" . ::tagged('B', 'abc', 'g15-z')]
--- response_body eval
my $L = 'A-g15-Mm4Nn5Oo6Pp7AAAB';
[::open4(::tagged('A', 'only_a', $L)),
 ::echo('B', "/socket.io/?$::Q&sid=g15-x&t=1"),
 ::echo('B', "/socket.io/?$::Q&sid=" . substr(::tag('C', 'abc'), 0, 7) . ".g15-y&t=1"),
 ::echo('A', "/socket.io/?$::Q&sid=$L"),
 "$::Q&sid=" . ::tagged('B', 'abc', 'g15-z') . "|/echo/?$::Q&sid=" . ::tagged('B', 'abc', 'g15-z') . "|\n"]
--- response_headers eval
[::announced(::open4(::tagged('A', 'only_a', 'A-g15-Mm4Nn5Oo6Pp7AAAB')), 'A'),
 "X-Prefix: " . ::tag('C', 'abc'), "!X-Prefix",
 "X-Status: learned\nX-Prefix: " . ::tag('B', 'abc'), "!X-Prefix"]
--- no_error_log
[error]
[warn]



=== TEST 17: drain (nginx 1.29.6 and later): a draining server keeps its tagged sessions, with and without strict, and mints no new ones
--- skip_nginx: 5: < 1.29.6
--- http_config eval
::upstreams() . <<'_EOC_'
    upstream drn {
        socketio_sticky sid_prefix zone=pfx;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_2 drain;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_3;
    }
    upstream drn_strict {
        socketio_sticky sid_prefix zone=pfx strict;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_1;
        server 127.0.0.1:$TEST_NGINX_PREFIX_PORT_2 drain;
    }
_EOC_
--- config
    location /drn/ { proxy_pass http://drn/socket.io/; }
    location /drn_strict/ { proxy_pass http://drn_strict/socket.io/; }
--- request eval
["GET /drn/?$::Q&sid=" . ::tagged('B', 'drn', 'dr16-one'),
 "GET /drn_strict/?$::Q&sid=" . ::tagged('B', 'drn_strict', 'dr16-two'),
 (map { "GET /drn/?$::Q&m=dr16-$_" } 1 .. 4)]
--- response_body_like eval
[qr/\A\Q@{[::echo('B', "\/socket.io\/?$::Q&sid=dr16-one")]}\E\z/,
 qr/\A\Q@{[::echo('B', "\/socket.io\/?$::Q&sid=dr16-two")]}\E\z/,
 (map { my $n = $_; ::one_of(map { ($_ => ::open4(::tagged($_, 'drn', "$_-dr16-$n"))) } qw(A C)) } 1 .. 4)]
--- response_headers eval
[::by_tag('B', 'drn'), ::by_tag('B', 'drn_strict'), ("") x 4]
--- no_error_log
[error]
[warn]



=== TEST 18: a reload that reorders abc's server lines and adds one keeps every tag (the added server has its own, and is down)
--- http_config eval
::upstreams(abc => CORE::join '', map { "        server 127.0.0.1:\$TEST_NGINX_PREFIX_PORT_$_;\n" } '4 down', 3, 1, 2)
--- config
--- request eval
[(map { my $x = $_; "GET /socket.io/?$::Q&sid=" . ::tagged($x, 'abc', "o17-$x") } qw(A B C B A)),
 "GET /socket.io/?$::Q&sid=" . ::tagged('D', 'abc', 'o17-D') . "&device_id=dev-17",
 "GET /socket.io/?$::Q&m=o17-new"]
--- response_body eval
[(map { ::echo($_, "/socket.io/?$::Q&sid=o17-$_") } qw(A B C B A)),
 qr/\A[ABC] \QGET \/socket.io\/?$::Q&sid=o17-D&device_id=dev-17\E\n\z/,
 ::one_of(map { ($_ => ::open4(::tagged($_, 'abc', "$_-o17-new"))) } qw(A B C))]
--- response_headers eval
[(map { ::by_tag($_, 'abc') } qw(A B C B A)),
 "X-Status: rebound\nX-Prefix: " . ::tag('D', 'abc'),
 ::announced(::open4(::tagged('A', 'abc', 'A-o17-new')))]
--- no_error_log
[error]
[warn]



=== TEST 19: a fresh zone: sessions learned before are unknown, the tag alone routes them
--- http_config eval
::upstreams(zone => 'fresh')
--- config
--- request eval
["GET /socket.io/?$::Q&sid=A-p8-Kx2Ut0yXQpSn5pAB",
 "GET /socket.io/?$::Q&sid=" . ::tagged('A', 'abc', 'A-p8-Kx2Ut0yXQpSn5pAB'),
 "GET /socket.io/?$::Q&sid=" . ::tagged('C', 'abc', 'A-p9-Wl8lY0pS3mV1AAAA'),
 "GET /a/?$::Q&sid=" . ::tagged('A', 'only_a', ::sid_of('v4k')),
 "GET /h/?$::Q&sid=" . ::tagged('H', 'only_h', ::hsid('len'))]
--- response_body eval
[::one_of(map { ($_ => ::echo($_, "/socket.io/?$::Q&sid=A-p8-Kx2Ut0yXQpSn5pAB")) } qw(A B C)),
 ::echo('A', "/socket.io/?$::Q&sid=A-p8-Kx2Ut0yXQpSn5pAB"),
 ::echo('C', "/socket.io/?$::Q&sid=A-p9-Wl8lY0pS3mV1AAAA"),
 ::echo('A', "/socket.io/?$::Q&sid=" . ::sid_of('v4k')),
 "H\n"]
--- response_headers eval
["X-Status: fallback\n!X-Prefix", ::by_tag('A', 'abc'), ::by_tag('C', 'abc'), ::by_tag('A', 'only_a'),
 ::by_tag('H', 'only_h')]
--- no_error_log
[error]
[warn]
