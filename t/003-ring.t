# Routing by device_id on the weighted consistent-hash table: every device stays on one
# backend, all backends get devices, weights are honoured, the order of the server lines does
# not matter, and requests without a device_id are balanced round robin.
#
# Many devices per request: a page (written with --- user_files) holds one SSI
# `include virtual="/t?device_id=..." wait="yes"` per device, so one request sends hundreds of
# proxied subrequests through the balancer, one after another. Each round is one such page;
# the rounds are sent as --- pipelined_requests. (One pipelined request per device would be
# far slower: Test::Nginx reads the error log after every pipelined response.)
#
# Backends answer "<name> <connection_requests> " followed by SSI commands that the
# proxying location (ssi on) fills in with $socketio_sticky_status, $socketio_sticky_key and
# $uri, so every subrequest adds a line like "b3 1 device_id dev-0042 /t" to the page. The
# checks below collect the pages of a block and judge them once the last one has arrived.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use StickyPages;

repeat_each(1);

our %Bodies;

# Every byte of a string as %XX.
sub ::pct {
    my $s = shift;
    $s =~ s/(.)/sprintf "%%%02X", ord $1/gse;
    return $s;
}

# [backend, connection_requests, status, key, uri] per line of every page.
sub parse_bodies {
    return [ map { [ split ' ', $_ ] } map { split /\n/, defined $_ ? $_ : '' } @{ $_[0] } ];
}

# key => { backend => count } for the lines (optionally only those of one URI).
sub backends_by_key {
    my ($got, $uri) = @_;
    my %m;
    for my $r (@$got) {
        next if defined $uri && (!defined $r->[4] || $r->[4] ne $uri);
        $m{ $r->[3] }{ $r->[0] }++;
    }
    return \%m;
}

# key => its single backend; keys seen on several backends are returned separately.
sub homes {
    my $by_key = shift;
    my (%home, @split);
    for my $k (sort keys %$by_key) {
        my @b = sort keys %{ $by_key->{$k} };
        if (@b == 1) {
            $home{$k} = $b[0];
        } else {
            push @split, "$k: @b";
        }
    }
    return (\%home, \@split);
}

sub count_by_backend {
    my $home = shift;
    my %n;
    $n{$_}++ for values %$home;
    return \%n;
}

sub statuses {
    my $got = shift;
    my %n;
    $n{ defined $_->[2] ? $_->[2] : '' }++ for @$got;
    return join ' ', map { "$_=$n{$_}" } sort keys %n;
}

my %checks = (

    # Every device on exactly one backend in every round; all four backends used, evenly.
    consistent => sub {
        my ($name, $got, $block) = @_;
        my ($ids, $rounds) = split ' ', $block->sticky_args;
        is(scalar @$got, $ids * $rounds, "$name - every subrequest answered");
        is(statuses($got), "device_id=" . ($ids * $rounds), "$name - every status is device_id");
        my $by_key = backends_by_key($got);
        is(scalar keys %$by_key, $ids, "$name - every device seen");
        my @short = grep { my $n = 0; $n += $_ for values %{ $by_key->{$_} }; $n != $rounds }
                    keys %$by_key;
        is(scalar @short, 0, "$name - every device seen $rounds times");
        my ($home, $split) = homes($by_key);
        is(scalar @$split, 0, "$name - every device stays on one backend")
            or diag(join "\n", ::first10(@$split));
        my $n = count_by_backend($home);
        is(join(' ', sort keys %$n), 'b1 b2 b3 b4', "$name - all four backends used");
        for my $be (sort keys %$n) {
            ok($n->{$be} >= $ids / 4 * 0.6 && $n->{$be} <= $ids / 4 * 1.4,
               "$name - $be has a fair share of the devices ($n->{$be} of $ids)");
        }
    },

    # b1 has weight 3, b2 weight 1: about three times the devices.
    weights => sub {
        my ($name, $got, $block) = @_;
        my ($ids, $rounds, $lo, $hi) = split ' ', $block->sticky_args;
        is(scalar @$got, $ids * $rounds, "$name - every subrequest answered");
        is(statuses($got), "device_id=" . ($ids * $rounds), "$name - every status is device_id");
        my ($home, $split) = homes(backends_by_key($got));
        is(scalar @$split, 0, "$name - every device stays on one backend");
        is(scalar keys %$home, $ids, "$name - every device seen");
        my $n = count_by_backend($home);
        my ($b1, $b2) = ($n->{b1} || 0, $n->{b2} || 0);
        my $ratio = $b2 ? $b1 / $b2 : 0;
        ok($ratio >= $lo && $ratio <= $hi,
           sprintf "%s - weight 3 vs 1 gives %d vs %d devices (ratio %.2f, expected %s..%s)",
                   $name, $b1, $b2, $ratio, $lo, $hi);
    },

    # The same devices sent to two upstreams (front URIs /t/a and /t/b) land on the same
    # backends.
    same_map => sub {
        my ($name, $got, $block) = @_;
        my ($ids) = split ' ', $block->sticky_args;
        is(statuses($got), "device_id=" . scalar(@$got), "$name - every status is device_id");
        my ($ma, $split_a) = homes(backends_by_key($got, '/t/a'));
        my ($mb, $split_b) = homes(backends_by_key($got, '/t/b'));
        is(scalar @$split_a + @$split_b, 0, "$name - every device stays on one backend");
        is(scalar keys %$ma, $ids, "$name - every device seen on /t/a");
        is(scalar keys %$mb, $ids, "$name - every device seen on /t/b");
        my @diff = grep { !defined $mb->{$_} || $ma->{$_} ne $mb->{$_} } sort keys %$ma;
        is(scalar @diff, 0, "$name - both upstreams map every device to the same backend")
            or diag(join ", ", map { "$_: $ma->{$_} vs " . ($mb->{$_} || '-') } ::first10(@diff));
        my $n = count_by_backend($ma);
        is(join(' ', sort keys %$n), 'b1 b2 b3 b4', "$name - all four backends used");
    },

    # The same device written plainly and fully percent-encoded: same key, same backend.
    decoded => sub {
        my ($name, $got, $block) = @_;
        my ($ids) = split ' ', $block->sticky_args;
        is(scalar @$got, 2 * $ids, "$name - every subrequest answered");
        is(statuses($got), "device_id=" . (2 * $ids), "$name - every status is device_id");
        my $by_key = backends_by_key($got);
        is(scalar keys %$by_key, $ids, "$name - encoded and plain ids give the same keys");
        my ($home, $split) = homes($by_key);
        is(scalar @$split, 0, "$name - encoded and plain ids go to the same backend");
    },

    # No device_id: round robin over the four equal backends.
    round_robin => sub {
        my ($name, $got, $block) = @_;
        my ($reqs) = split ' ', $block->sticky_args;
        is(scalar @$got, $reqs, "$name - every subrequest answered");
        is(statuses($got), "fallback=$reqs", "$name - every status is fallback");
        my @keys = grep { $_->[3] ne '(none)' } @$got;
        is(scalar @keys, 0, "$name - no key");
        my %n;
        $n{ $_->[0] }++ for @$got;
        is(join(' ', map { "$_=$n{$_}" } sort keys %n),
           join(' ', map { "b$_=" . ($reqs / 4) } 1 .. 4),
           "$name - requests spread evenly");
    },
);

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $check = $block->sticky_check;
    return unless defined $check;
    my $name = $block->name;
    $Bodies{$name} = [] if $req_idx == 0;
    push @{ $Bodies{$name} }, $body;
    my $reqs = $block->pipelined_requests;
    return unless $req_idx == ($reqs ? @$reqs - 1 : 0);
    SKIP: {
        skip "$name - sticky_check skipped due to $dry_run", 1 if $dry_run;
        my $got = parse_bodies($Bodies{$name});
        my @junk = grep { @$_ != 5 || $_->[0] !~ /^b\d$/ || $_->[1] !~ /^\d+$/ } @$got;
        is(scalar @junk, 0, "$name - every line is a backend report")
            or diag(join "\n", map { "@$_" } ::first10(@junk));
        my $code = $checks{$check} or die "unknown sticky_check $check";
        $code->($name, $got, $block);
    }
});

run_tests();

__DATA__

=== TEST 1: 1000 devices, 3 rounds each: every device always on the same backend, all 4 used
--- http_config
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" --> <!--# echo var="socketio_sticky_key" --> <!--# echo var="uri" -->';
    }
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_4;
    }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1; return 200 "b1 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2; return 200 "b2 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3; return 200 "b3 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_4; return 200 "b4 $connection_requests $report\n"; }
--- config
    ssi on;
    ssi_types *;
    location /t {
        proxy_pass http://backend;
    }
--- user_files eval
[
    ["fwd.html", ::page(map { "/t?device_id=$_" } ::ids(1000))],
    ["rev.html", ::page(map { "/t?device_id=$_" } CORE::reverse(::ids(1000)))],
]
--- pipelined_requests eval
["GET /fwd.html", "GET /rev.html", "GET /fwd.html"]
--- sticky_check: consistent
--- sticky_args: 1000 3
--- timeout: 20
--- no_error_log
[error]
[alert]
[crit]



=== TEST 2: weights: weight=3 gets about three times the devices of weight=1
--- http_config
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" --> <!--# echo var="socketio_sticky_key" --> <!--# echo var="uri" -->';
    }
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1 weight=3;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1; return 200 "b1 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2; return 200 "b2 $connection_requests $report\n"; }
--- config
    ssi on;
    ssi_types *;
    location /t {
        proxy_pass http://backend;
    }
--- user_files eval
[["w.html", ::page(map { "/t?device_id=$_" } ::ids(1000, 'w'))]]
--- pipelined_requests eval
["GET /w.html", "GET /w.html"]
--- sticky_check: weights
--- sticky_args: 1000 2 2.2 4.2
--- timeout: 20
--- no_error_log
[error]
[alert]
[crit]



=== TEST 3: the order of the server lines and non-weight parameters do not change the mapping
--- http_config
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" --> <!--# echo var="socketio_sticky_key" --> <!--# echo var="uri" -->';
    }
    upstream backend_a {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_4;
    }
    upstream backend_b {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_3 max_fails=5;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_4 fail_timeout=30s max_conns=1000;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        socketio_sticky device_id=header:X-Nothing,arg:device_id;
    }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1; return 200 "b1 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2; return 200 "b2 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3; return 200 "b3 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_4; return 200 "b4 $connection_requests $report\n"; }
--- config
    ssi on;
    ssi_types *;
    location /t/a {
        proxy_pass http://backend_a;
    }
    location /t/b {
        proxy_pass http://backend_b;
    }
--- user_files eval
[["order.html", ::page(map { ("/t/a?device_id=$_", "/t/b?device_id=$_") } ::ids(500, 'order'))]]
--- request
GET /order.html
--- sticky_check: same_map
--- sticky_args: 500
--- timeout: 20
--- no_error_log
[error]
[alert]
[crit]



=== TEST 4: a percent-encoded device_id is the same device as the plain one
--- http_config
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" --> <!--# echo var="socketio_sticky_key" --> <!--# echo var="uri" -->';
    }
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_4;
    }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1; return 200 "b1 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2; return 200 "b2 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3; return 200 "b3 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_4; return 200 "b4 $connection_requests $report\n"; }
--- config
    ssi on;
    ssi_types *;
    location /t {
        proxy_pass http://backend;
    }
--- user_files eval
[["enc.html", ::page(map { ("/t?device_id=$_", "/t?device_id=" . ::pct($_)) } ::ids(300, 'enc'))]]
--- request
GET /enc.html
--- sticky_check: decoded
--- sticky_args: 300
--- timeout: 20
--- no_error_log
[error]
[alert]
[crit]



=== TEST 5: without a device_id, plain round robin
--- http_config
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" --> <!--# echo var="socketio_sticky_key" --> <!--# echo var="uri" -->';
    }
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_4;
    }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1; return 200 "b1 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2; return 200 "b2 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3; return 200 "b3 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_RAND_PORT_4; return 200 "b4 $connection_requests $report\n"; }
--- config
    ssi on;
    ssi_types *;
    location /t {
        proxy_pass http://backend;
    }
--- user_files eval
[["rr.html", ::page(("/t?sid=abc&other=1", "/t?device_id=", "/t", "/t?device_idx=1") x 4)]]
--- request
GET /rr.html
--- sticky_check: round_robin
--- sticky_args: 16
--- no_error_log
[error]
[alert]
[crit]
