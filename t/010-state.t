# The state file (`state=PATH`): the session table lives in a file that a new nginx maps again,
# so learned sessions outlive the master process (a binary upgrade; here, a full restart
# between blocks). A state file of another size or format is replaced by a new table; a file
# that is not a state file is never touched: `nginx -t` and a start refuse it with the
# directive's place, as they do state files that two zones share or that cannot be made.
#
# The file lives outside the server root (which is remade for every block), in a directory
# made for this test file.

use Test::Nginx::Socket 'no_plan';
use File::Temp qw(tempdir);
use lib 't/lib';
use StickyPages;

repeat_each(1);
no_shuffle();
log_level('notice');

$ENV{TEST_NGINX_STATE_DIR} = tempdir('sticky-state-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# Files that blocks below find in place before their nginx starts: one that is not a state file
# (TEST 4, 4b), an empty one (TEST 4d), and a file where a directory is expected (TEST 8).
sub ::write_file {
    my ($name, $content) = @_;
    open(my $f, '>', "$ENV{TEST_NGINX_STATE_DIR}/$name") or die "$name: $!";
    print $f $content;
    close $f or die "$name: $!";
}
::write_file('junk.sticky', "x" x 300000);
::write_file('empty.sticky', '');
::write_file('plain', '');

::fixed_ports('TEST_NGINX_STATE_PORT_', 2);

sub ::upstreams {
    my ($size) = @_;
    return "    access_log off;\n" . ::mock_backends('TEST_NGINX_STATE_PORT_', qw(A B)) . <<"_EOC_";
    upstream ab {
        socketio_sticky zone=st:$size state=\$TEST_NGINX_STATE_DIR/st.sticky;
        server 127.0.0.1:\$TEST_NGINX_STATE_PORT_1;
        server 127.0.0.1:\$TEST_NGINX_STATE_PORT_2;
    }
    upstream only_b {
        socketio_sticky zone=st;
        server 127.0.0.1:\$TEST_NGINX_STATE_PORT_2;
    }
_EOC_
}

our $Locations = <<'_EOC_';
    location /ab/ {
        proxy_pass http://ab;
        add_header X-Status $socketio_sticky_status always;
    }
    location /only_b/ {
        proxy_pass http://only_b;
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: a new state file: the session minted by B is learned into it
--- http_config eval
::upstreams('1m')
--- config eval
$::Locations
--- request eval
["GET /only_b/?EIO=4&transport=polling&mint=sB-St4teF1le",
 "GET /ab/?EIO=4&transport=polling&sid=sB-St4teF1le",
 "GET /ab/?EIO=4&transport=polling&sid=sB-St4teF1le"]
--- response_body_like eval
[qr/"sid":"sB-St4teF1le"/, "^B\n\\z", "^B\n\\z"]
--- response_headers eval
["", "X-Status: learned", "X-Status: learned"]
--- no_error_log
[error]
[warn]



=== TEST 2: nginx restarted: the new master maps the file and the session is still known (no handshake since)
--- http_config eval
::upstreams('1m')
--- config eval
$::Locations
--- request
GET /ab/?EIO=4&transport=polling&sid=sB-St4teF1le
--- response_body
B
--- response_headers
X-Status: learned
--- error_log eval
qr{socketio_sticky: zone "st" keeps 1 sessions from "\S*/st\.sticky"}
--- no_error_log
starts a new table
[error]
[warn]



=== TEST 3: the zone's size changed: a new table replaces the file, the old session is unknown
--- http_config eval
::upstreams('2m')
--- config eval
$::Locations
--- request
GET /ab/?EIO=4&transport=polling&sid=sB-St4teF1le
--- response_headers
X-Status: fallback
--- error_log
socketio_sticky: zone "st" starts a new table of
--- no_error_log
keeps 1 sessions
[error]
[warn]



=== TEST 4: a file that is not a state file is refused, and left as it was
--- http_config
    upstream backend {
        socketio_sticky zone=junk:64k state=$TEST_NGINX_STATE_DIR/junk.sticky;
        server 127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has state file "\S*junk\.sticky" that is a file of something else, not a socketio_sticky state file: it is left untouched \(give state= a path of its own\) in \S*nginx\.conf:\d+}



=== TEST 4b: the refused file is as it was
--- config
    location = /junk {
        alias $TEST_NGINX_STATE_DIR/junk.sticky;
    }
--- request
GET /junk
--- response_body eval
"x" x 300000
--- no_error_log
[error]



=== TEST 4c: state= naming nginx's own configuration file (a typo that would have destroyed it)
--- http_config
    upstream backend {
        socketio_sticky zone=typo:64k state=conf/nginx.conf;
        server 127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
--- config
    location /t {
        proxy_pass http://backend;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has state file "\S*conf/nginx\.conf" that is a file of something else, not a socketio_sticky state file: it is left untouched \(give state= a path of its own\) in \S*nginx\.conf:\d+}



=== TEST 4d: an empty file is used (nothing to lose)
--- http_config
    upstream backend {
        socketio_sticky zone=empty:64k state=$TEST_NGINX_STATE_DIR/empty.sticky;
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
GET /socket.io/?EIO=4&transport=polling&sid=whatever
--- response_body
backend
--- response_headers
X-Status: fallback
--- error_log
socketio_sticky: zone "empty" starts a new table of
--- no_error_log
[error]
[warn]



=== TEST 5: two zones with one state file
--- http_config
    upstream a {
        socketio_sticky zone=one:64k state=$TEST_NGINX_STATE_DIR/shared.sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    upstream b {
        socketio_sticky zone=two:64k state=$TEST_NGINX_STATE_DIR/shared.sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://a;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has state file "\S*shared\.sticky" that zone "one" uses too in \S*nginx\.conf:\d+}



=== TEST 6: upstreams that share a zone give it two state files
--- http_config
    upstream a {
        socketio_sticky zone=one:64k state=$TEST_NGINX_STATE_DIR/a.sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    upstream b {
        socketio_sticky zone=one state=$TEST_NGINX_STATE_DIR/b.sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://a;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has state file "\S*b\.sticky" but zone "one" has "\S*a\.sticky" in \S*nginx\.conf:\d+}



=== TEST 7: a state file in a directory that does not exist
--- http_config
    upstream a {
        socketio_sticky zone=one:64k state=$TEST_NGINX_STATE_DIR/no/such/dir/a.sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://a;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has state file "\S*/no/such/dir/a\.sticky" that is in the directory "\S*/no/such/dir", which cannot be used \(2: No such file or directory\) in \S*nginx\.conf:\d+}



=== TEST 8: a state file whose directory is a file
--- http_config
    upstream a {
        socketio_sticky zone=one:64k state=$TEST_NGINX_STATE_DIR/plain/a.sticky;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /t {
        proxy_pass http://a;
    }
--- must_die
--- suppress_stderr
--- error_log eval
qr{\[emerg\] .*"socketio_sticky" directive has state file "\S*/plain/a\.sticky" that is in "\S*/plain", which is not a directory in \S*nginx\.conf:\d+}
