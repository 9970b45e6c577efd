# When a device's backend is out (marked down, its port closed, failed), exactly that
# backend's devices move, each to the same substitute every time, and nobody else moves;
# backup servers; keepalive and zone together with the directive.
#
# Blocks run in order (no_shuffle): TEST 1 records where every device lives with all four
# backends up, and later blocks compare against it. For that, the four backends listen on
# ports fixed for the whole file ($TEST_NGINX_STICKY_PORT_1..4, chosen below), so their
# identities ("127.0.0.1:PORT") and thus the hash table are the same in every block.
#
# As in 003-ring.t, a page (--- user_files) holds one SSI `include virtual=... wait="yes"` per
# device and every subrequest adds a line "<backend> <connection_requests> <status> <key>
# <uri>" to the response; the checks named in --- sticky_check judge those lines once the
# last response of the block has arrived. Blocks that expect lines in the error log send one
# request with all the rounds in its page: with --- pipelined_requests, Test::Nginx checks
# --- error_log after every response against only the lines logged since the previous check.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use StickyPages;

repeat_each(1);
no_shuffle();

# Four free ports, the same for every block of this file.
::fixed_ports('TEST_NGINX_STICKY_PORT_', 4);

our (%Bodies, %Saved);

# Lines of a block's pages as {backend, conns, status, key, uri}.
sub rows {
    my @rows;
    for my $body (@{ $_[0] }) {
        for my $line (split /\n/, defined $body ? $body : '') {
            my ($backend, $conns, $status, $key, $uri) = split ' ', $line;
            push @rows, { backend => $backend, conns => $conns, status => $status,
                          key => $key, uri => $uri, line => $line };
        }
    }
    return \@rows;
}

# key => backend for the rows of one URI; keys seen on several backends are listed apart.
sub map_of {
    my ($rows, $uri) = @_;
    my (%seen, %home, @split);
    $seen{ $_->{key} }{ $_->{backend} } = 1 for grep { $_->{uri} eq $uri } @$rows;
    for my $k (sort keys %seen) {
        my @b = sort keys %{ $seen{$k} };
        if (@b == 1) { $home{$k} = $b[0] } else { push @split, "$k: @b" }
    }
    return (\%home, \@split);
}

sub status_of {
    my ($rows, $uri) = @_;
    my %s;
    for my $r (grep { $_->{uri} eq $uri } @$rows) {
        $s{ $r->{key} }{ $r->{status} } = 1;
    }
    return { map { ($_ => join ',', sort keys %{ $s{$_} }) } keys %s };
}

# The saved map named $ref, or this block's map of URI $ref.
sub reference {
    my ($name, $rows, $ref) = @_;
    if ($ref =~ m{^/}) {
        my ($m) = map_of($rows, $ref);
        return $m;
    }
    return $Saved{$ref} if $Saved{$ref};
    fail("$name - no saved map \"$ref\" (the blocks of this file must run in order)");
    return undef;
}

my %checks = (

    # Every device of `uri` on one backend with status device_id, all of `backends` used;
    # the map is saved as `save`, and compared with `same` when given.
    record => sub {
        my ($name, $rows, %a) = @_;
        my @mine = grep { $_->{uri} eq $a{uri} } @$rows;
        ok(@mine > 0, "$name - $a{uri}: responses");
        my @bad = grep { $_->{status} ne 'device_id' } @mine;
        is(scalar @bad, 0, "$name - $a{uri}: every status is device_id")
            or diag(join "\n", map { $_->{line} } ::first10(@bad));
        my ($home, $split) = map_of($rows, $a{uri});
        is(scalar @$split, 0, "$name - $a{uri}: every device stays on one backend")
            or diag(join "\n", ::first10(@$split));
        my %used = map { ($_ => 1) } values %$home;
        is(join('_', sort keys %used), $a{backends}, "$name - $a{uri}: backends used");
        $Saved{ $a{save} } = $home if $a{save};
        if ($a{same}) {
            my $ref = reference($name, $rows, $a{same});
            if ($ref) {
                my @diff = grep { ($ref->{$_} || '-') ne $home->{$_} } sort keys %$home;
                is(scalar @diff, 0, "$name - $a{uri}: the same map as $a{same}")
                    or diag(join ", ", map { "$_: $home->{$_} vs " . ($ref->{$_} || '-') }
                                           ::first10(@diff));
            }
        }
    },

    # Against the map `home`: devices of `dead` moved off it with status rebound, each to a
    # single substitute; every other device kept its backend and status device_id. The new
    # map is saved as `save` and compared with `same` when given.
    moved => sub {
        my ($name, $rows, %a) = @_;
        my $ref = reference($name, $rows, $a{home}) or return;
        my ($now, $split) = map_of($rows, $a{uri});
        my $status = status_of($rows, $a{uri});
        is(scalar @$split, 0, "$name - $a{uri}: every device stays on one backend")
            or diag(join "\n", ::first10(@$split));
        is(scalar keys %$now, scalar keys %$ref, "$name - $a{uri}: every device seen");
        my @dead = grep { $ref->{$_} eq $a{dead} } sort keys %$now;
        my @live = grep { $ref->{$_} ne $a{dead} } sort keys %$now;
        ok(@dead > 0, "$name - $a{uri}: some devices lived on $a{dead} (" . @dead . ")");
        ok(@live > 0, "$name - $a{uri}: some devices lived elsewhere (" . @live . ")");
        my @stayed = grep { $now->{$_} ne $ref->{$_} || $status->{$_} ne 'device_id' } @live;
        is(scalar @stayed, 0, "$name - $a{uri}: nobody else moved, all with status device_id")
            or diag(join ", ", map { "$_: $ref->{$_} -> $now->{$_} ($status->{$_})" }
                                   ::first10(@stayed));
        my @wrong = grep { $now->{$_} eq $a{dead} || $status->{$_} ne $a{moved_status} } @dead;
        is(scalar @wrong, 0,
           "$name - $a{uri}: the devices of $a{dead} moved, with status $a{moved_status}")
            or diag(join ", ", map { "$_: $now->{$_} ($status->{$_})" } ::first10(@wrong));
        my %subst = map { ($now->{$_} => 1) } @dead;
        ok(!$subst{ $a{dead} } && keys %subst >= 1,
           "$name - $a{uri}: substitutes used: " . join(' ', sort keys %subst));
        $Saved{ $a{save} } = $now if $a{save};
        if ($a{same}) {
            my $other = reference($name, $rows, $a{same});
            if ($other) {
                my @diff = grep { ($other->{$_} || '-') ne $now->{$_} } sort keys %$now;
                is(scalar @diff, 0, "$name - $a{uri}: the same substitutes as $a{same}")
                    or diag(join ", ", map { "$_: $now->{$_} vs " . ($other->{$_} || '-') }
                                           ::first10(@diff));
            }
        }
    },

    # Every request of `uri` went to `backend` with one of the `status` values (a|b).
    all_on => sub {
        my ($name, $rows, %a) = @_;
        my @mine = grep { $_->{uri} eq $a{uri} } @$rows;
        ok(@mine > 0, "$name - $a{uri}: responses");
        my @bad = grep { $_->{backend} ne $a{backend} || $_->{status} !~ /^(?:$a{status})$/ }
                  @mine;
        is(scalar @bad, 0, "$name - $a{uri}: all on $a{backend} with status $a{status}")
            or diag(join "\n", map { $_->{line} } ::first10(@bad));
    },

    # No request of `uri` went to `backend`.
    never_on => sub {
        my ($name, $rows, %a) = @_;
        my @mine = grep { $_->{uri} eq $a{uri} } @$rows;
        ok(@mine > 0, "$name - $a{uri}: responses");
        my @bad = grep { $_->{backend} eq $a{backend} } @mine;
        is(scalar @bad, 0, "$name - $a{uri}: none on $a{backend}");
    },

    # Some request of `uri` reused an upstream connection (keepalive in effect).
    reused => sub {
        my ($name, $rows, %a) = @_;
        my @reused = grep { $_->{uri} eq $a{uri} && $_->{conns} > 1 } @$rows;
        ok(@reused > 0, "$name - $a{uri}: upstream connections reused (" . @reused . ")");
    },
);

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $spec = $block->sticky_check;
    return unless defined $spec;
    my $name = $block->name;
    $Bodies{$name} = [] if $req_idx == 0;
    push @{ $Bodies{$name} }, $body;
    my $reqs = $block->pipelined_requests;
    return unless $req_idx == ($reqs ? @$reqs - 1 : 0);
    SKIP: {
        skip "$name - sticky_check skipped due to $dry_run", 1 if $dry_run;
        my $rows = rows($Bodies{$name});
        my @junk = grep { !defined $_->{uri} || $_->{backend} !~ /^b\d$/ } @$rows;
        is(scalar @junk, 0, "$name - every line is a backend report")
            or diag(join "\n", map { $_->{line} } ::first10(@junk));
        for my $line (split /\n/, $spec) {
            next unless $line =~ /\S/;
            my ($check, @args) = split ' ', $line;
            my $code = $checks{$check} or die "unknown sticky_check $check";
            $code->($name, $rows, moved_status => 'rebound', map { split /=/, $_, 2 } @args);
        }
    }
});

run_tests();

__DATA__

=== TEST 1: baseline: where 400 devices live with all four backends up
--- http_config
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" --> <!--# echo var="socketio_sticky_key" --> <!--# echo var="uri" -->';
    }
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_2;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_3;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_4;
    }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_1; return 200 "b1 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_2; return 200 "b2 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_3; return 200 "b3 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_4; return 200 "b4 $connection_requests $report\n"; }
--- config
    ssi on;
    ssi_types *;
    location /t {
        proxy_pass http://backend;
    }
--- user_files eval
[["p.html", ::page(map { "/t?device_id=$_" } ::ids(400))]]
--- request
GET /p.html
--- sticky_check
record uri=/t backends=b1_b2_b3_b4 save=baseline
--- timeout: 20
--- no_error_log
[error]
[alert]
[crit]



=== TEST 2: b2's port closed: only b2's devices move, each always to the same substitute
--- http_config
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" --> <!--# echo var="socketio_sticky_key" --> <!--# echo var="uri" -->';
    }
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_2;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_3;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_4;
    }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_1; return 200 "b1 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_3; return 200 "b3 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_4; return 200 "b4 $connection_requests $report\n"; }
--- config
    ssi on;
    ssi_types *;
    location /t {
        proxy_pass http://backend;
    }
--- user_files eval
[["p.html", ::page(map { "/t?device_id=$_" } (::ids(400)) x 3)]]
--- request
GET /p.html
--- sticky_check
moved uri=/t home=baseline dead=b2 save=closed
--- timeout: 20
--- error_log
connect() failed (111: Connection refused) while connecting to upstream
upstream server temporarily disabled
--- no_error_log
[alert]
[crit]



=== TEST 3: b2 marked down: the same moves as with its port closed; with all up, the baseline
--- http_config
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" --> <!--# echo var="socketio_sticky_key" --> <!--# echo var="uri" -->';
    }
    upstream backend_all {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_2;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_3;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_4;
    }
    upstream backend_down {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_2 down;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_3;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_4;
    }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_1; return 200 "b1 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_2; return 200 "b2 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_3; return 200 "b3 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_4; return 200 "b4 $connection_requests $report\n"; }
--- config
    ssi on;
    ssi_types *;
    location /all {
        proxy_pass http://backend_all;
    }
    location /down {
        proxy_pass http://backend_down;
    }
--- user_files eval
[["p.html", ::page(map { ("/all?device_id=$_", "/down?device_id=$_") } ::ids(400))]]
--- pipelined_requests eval
["GET /p.html", "GET /p.html"]
--- sticky_check
record uri=/all backends=b1_b2_b3_b4 same=baseline
moved uri=/down home=/all dead=b2 same=closed
--- timeout: 20
--- no_error_log
[error]
[alert]
[crit]



=== TEST 4: max_fails=0: the closed port is tried every time, the substitute stays the same
--- http_config
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" --> <!--# echo var="socketio_sticky_key" --> <!--# echo var="uri" -->';
    }
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_2 max_fails=0;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_3;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_4;
    }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_1; return 200 "b1 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_3; return 200 "b3 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_4; return 200 "b4 $connection_requests $report\n"; }
--- config
    ssi on;
    ssi_types *;
    location /t {
        proxy_pass http://backend;
    }
--- user_files eval
[["p.html", ::page(map { "/t?device_id=$_" } (::ids(400)) x 2)]]
--- request
GET /p.html
--- sticky_check
moved uri=/t home=baseline dead=b2 same=closed
--- timeout: 20
--- error_log
connect() failed (111: Connection refused) while connecting to upstream
--- no_error_log
upstream server temporarily disabled
[alert]
[crit]



=== TEST 5: backup: unused while a primary is up; with all primaries down it takes every device
--- http_config
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" --> <!--# echo var="socketio_sticky_key" --> <!--# echo var="uri" -->';
    }
    upstream backend_up {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_2;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_3 backup;
    }
    upstream backend_down {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_1 down;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_2 down;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_3 backup;
    }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_1; return 200 "b1 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_2; return 200 "b2 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_3; return 200 "b3 $connection_requests $report\n"; }
--- config
    ssi on;
    ssi_types *;
    location /up {
        proxy_pass http://backend_up;
    }
    location /down {
        proxy_pass http://backend_down;
    }
--- user_files eval
[["p.html", ::page((map { ("/up?device_id=$_", "/down?device_id=$_") } ::ids(100, 'bk')),
                   ("/upx", "/downx") x 10)]]
--- request
GET /p.html
--- sticky_check
record uri=/up backends=b1_b2
never_on uri=/up backend=b3
never_on uri=/upx backend=b3
all_on uri=/down backend=b3 status=fallback
all_on uri=/downx backend=b3 status=fallback
--- timeout: 20
--- no_error_log
[error]
[alert]
[crit]



=== TEST 6: every primary's port closed: device_id requests end on the backup
--- http_config
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" --> <!--# echo var="socketio_sticky_key" --> <!--# echo var="uri" -->';
    }
    upstream backend {
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_2;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_3 backup;
    }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_3; return 200 "b3 $connection_requests $report\n"; }
--- config
    ssi on;
    ssi_types *;
    location /t {
        proxy_pass http://backend;
    }
--- user_files eval
[["p.html", ::page(map { "/t?device_id=$_" } (::ids(50, 'bk')) x 2)]]
--- request
GET /p.html
--- sticky_check
all_on uri=/t backend=b3 status=fallback
--- timeout: 20
--- error_log
connect() failed (111: Connection refused) while connecting to upstream
--- no_error_log
[alert]
[crit]



=== TEST 7: zone and keepalive: the same map as without them, and the same moves when down
--- http_config
    map $pid $report {
        default '<!--# echo var="socketio_sticky_status" --> <!--# echo var="socketio_sticky_key" --> <!--# echo var="uri" -->';
    }
    upstream backend_all {
        zone sticky_all 64k;
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_2;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_3;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_4;
        keepalive 8;
    }
    upstream backend_down {
        zone sticky_down 64k;
        socketio_sticky;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_1;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_2 down;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_3;
        server 127.0.0.1:$TEST_NGINX_STICKY_PORT_4;
        keepalive 8;
    }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_1; return 200 "b1 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_2; return 200 "b2 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_3; return 200 "b3 $connection_requests $report\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_STICKY_PORT_4; return 200 "b4 $connection_requests $report\n"; }
--- config
    ssi on;
    ssi_types *;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location /all {
        proxy_pass http://backend_all;
    }
    location /down {
        proxy_pass http://backend_down;
    }
--- user_files eval
[["p.html", ::page(map { ("/all?device_id=$_", "/down?device_id=$_") } ::ids(400))]]
--- pipelined_requests eval
["GET /p.html", "GET /p.html"]
--- sticky_check
record uri=/all backends=b1_b2_b3_b4 same=baseline
moved uri=/down home=/all dead=b2 same=closed
reused uri=/all
reused uri=/down
--- timeout: 20
--- no_error_log
[error]
[alert]
[crit]
