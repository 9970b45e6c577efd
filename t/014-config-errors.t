# Every configuration mistake socketio_sticky finds, one block each: nginx refuses to start (as
# `nginx -t` refuses the configuration) with one [emerg] line, nginx's usual form: the directive,
# the reason, and the file and line of the directive at fault.
#
# A block's configuration is the file bad.conf (--- user_files), which nginx.conf includes in
# its http{} block, so that the place in the message is the block's own line. --- error_log
# gives the whole message; the preprocessor below turns it into a pattern for the whole [emerg]
# line (stderr's "nginx: [emerg] MESSAGE" or the error log's "[emerg] PID#TID: MESSAGE"),
# where "in bad.conf:N" is the included file and "<any>" stands for text that is not ours (the
# regex library's reason). A few messages are nginx's own; their blocks say so.
#
# Mistakes that need files on disk (state=) are in t/010-state.t; those about nginx's own
# `sticky` and `server ... route=` (nginx 1.29.6 and later) in t/011-route-param-sticky.t.

use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_long_string();

add_block_preprocessor(sub {
    my $block = shift;
    my $want = $block->error_log;
    return if !defined $want || ref $want;
    chomp $want;
    my ($msg, $file, $line) = $want =~ /\A(.*) in (\S+):(\d+)\z/ ? ($1, $2, $3) : ($want);
    my $pattern = join '.+', map { quotemeta } split /<any>/, $msg, -1;
    $pattern .= " in \\S*/html/\Q$file\E:$line" if defined $file;
    $block->set_value(error_log => qr/\[emerg\] (?:\d+#\d+: )?$pattern$/m);
    $block->set_value(http_config => "    include ../html/bad.conf;\n");
    $block->set_value(config => "    location /t {\n        return 204;\n    }\n");
    $block->set_value(must_die => 1);
    $block->set_value(suppress_stderr => 1);
});

run_tests();

__DATA__

=== TEST 1: an unknown parameter
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky foo=1;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has unknown parameter "foo=1" in bad.conf:2



=== TEST 2: a known parameter name without a value is unknown
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky sid;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has unknown parameter "sid" in bad.conf:2



=== TEST 3: a flag given a value
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky strict=on;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has unknown parameter "strict=on" in bad.conf:2



=== TEST 4: the same parameter twice
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky device_id=arg:a device_id=arg:b;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has parameter "device_id" twice in bad.conf:2



=== TEST 5: strict twice
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky strict strict;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has parameter "strict" twice in bad.conf:2



=== TEST 6: an invalid source
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky sid=bogus;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid source "bogus" in "sid=bogus", expected arg:NAME, cookie:NAME, header:NAME, path, uri:REGEX or $variable in bad.conf:2



=== TEST 7: an invalid source later in a device_id list
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky device_id=arg:a,cookie:;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid source "cookie:" in "device_id=arg:a,cookie:", expected arg:NAME, cookie:NAME, header:NAME, path, uri:REGEX or $variable in bad.conf:2



=== TEST 8: a header source without a name
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky device_id=header:;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid source "header:" in "device_id=header:", expected arg:NAME, cookie:NAME, header:NAME, path, uri:REGEX or $variable in bad.conf:2



=== TEST 9: an invalid variable name as a source
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky device_id=$a-b;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid source "$a-b" in "device_id=$a-b", expected arg:NAME, cookie:NAME, header:NAME, path, uri:REGEX or $variable in bad.conf:2



=== TEST 10: an unknown variable as a source: nginx's own message, which has no place
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky device_id=$no_such_variable_here;
    server 127.0.0.1:8001;
}
--- error_log
unknown "no_such_variable_here" variable



=== TEST 11: an invalid regex
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky device_id=uri:(;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid regex in "device_id=uri:(": <any> in bad.conf:2



=== TEST 12: a regex without a capture group
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky "device_id=uri:^/x$";
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has a regex without a capture group in "device_id=uri:^/x$" in bad.conf:2



=== TEST 13: an empty regex
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky sid=uri:;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid regex in "sid=uri:": empty in bad.conf:2



=== TEST 14: an empty source list
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky sid=;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has no sources in "sid=" in bad.conf:2



=== TEST 15: an invalid timeout
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky timeout=5x;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid timeout "5x" in bad.conf:2



=== TEST 16: a zero timeout
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky zone=z:1m timeout=0;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid timeout "0" in bad.conf:2



=== TEST 17: a negative timeout
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky timeout=-1s;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid timeout "-1s" in bad.conf:2



=== TEST 18: an unknown balance
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky balance=random;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid balance "random", expected round_robin or least_conn in bad.conf:2



=== TEST 19: a zone too small
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky zone=x:1k;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has zone "x" that is too small, the minimum is 32k in bad.conf:2



=== TEST 20: a zone just under the minimum (31k)
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky sid=arg:sid zone=almost:31k;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has zone "almost" that is too small, the minimum is 32k in bad.conf:2



=== TEST 21: an invalid zone size
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky zone=a:1x;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid zone size "1x" in bad.conf:2



=== TEST 22: a zone with two sizes
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky zone=a:1m:2m;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid zone size "1m:2m" in bad.conf:2



=== TEST 23: an empty zone name
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky zone=:1m;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid zone ":1m" in bad.conf:2



=== TEST 24: a zone named without a size anywhere
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky zone=nosize;
    server 127.0.0.1:8001;
}
upstream other {
    socketio_sticky zone=nosize;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has zone "nosize" without a size, and no "zone=nosize:SIZE" gives it one in bad.conf:2



=== TEST 25: one zone with two different sizes: nginx's own message
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky zone=twice:1m;
    server 127.0.0.1:8001;
}
upstream other {
    socketio_sticky zone=twice:2m;
    server 127.0.0.1:8001;
}
--- error_log
the size 2097152 of shared memory zone "twice" conflicts with already declared size 1048576 in bad.conf:6



=== TEST 26: the zone name of another module: nginx's own message
--- user_files
>>> bad.conf
limit_req_zone $binary_remote_addr zone=taken:1m rate=1r/s;
upstream backend {
    socketio_sticky zone=taken:1m;
    server 127.0.0.1:8001;
}
--- error_log
the shared memory zone "taken" is already declared for a different use in bad.conf:3



=== TEST 27: an empty state= path
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky state=;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has an empty path in "state=" in bad.conf:2



=== TEST 28: the directive twice in one upstream
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky;
    server 127.0.0.1:8001;
    socketio_sticky device_id=arg:d;
}
--- error_log
"socketio_sticky" directive is duplicate in bad.conf:4



=== TEST 29: socketio_sticky at http level
--- user_files
>>> bad.conf
socketio_sticky;
upstream backend {
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive is not allowed here in bad.conf:1



=== TEST 30: socketio_sticky in a server
--- user_files
>>> bad.conf
server {
    listen 127.0.0.1:8002;
    socketio_sticky;
}
--- error_log
"socketio_sticky" directive is not allowed here in bad.conf:3



=== TEST 31: socketio_sticky in a location
--- user_files
>>> bad.conf
server {
    listen 127.0.0.1:8002;
    location / {
        socketio_sticky;
    }
}
--- error_log
"socketio_sticky" directive is not allowed here in bad.conf:4



=== TEST 32: socketio_sticky_route at http level
--- user_files
>>> bad.conf
socketio_sticky_route b1 127.0.0.1:8001;
--- error_log
"socketio_sticky_route" directive is not allowed here in bad.conf:1



=== TEST 33: socketio_sticky_route in a location
--- user_files
>>> bad.conf
server {
    listen 127.0.0.1:8002;
    location / {
        socketio_sticky_route b1 127.0.0.1:8001;
    }
}
--- error_log
"socketio_sticky_route" directive is not allowed here in bad.conf:4



=== TEST 34: ip_hash after socketio_sticky
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky;
    ip_hash;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive is replaced by a load balancing method given after it in the same upstream (one method per upstream) in bad.conf:2



=== TEST 35: least_conn after socketio_sticky
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky;
    least_conn;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive is replaced by a load balancing method given after it in the same upstream (one method per upstream) in bad.conf:2



=== TEST 36: hash $arg_room after socketio_sticky
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky;
    hash $arg_room;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive is replaced by a load balancing method given after it in the same upstream (one method per upstream) in bad.conf:2



=== TEST 37: hash $arg_room consistent after socketio_sticky
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky;
    hash $arg_room consistent;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive is replaced by a load balancing method given after it in the same upstream (one method per upstream) in bad.conf:2



=== TEST 38: random after socketio_sticky
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky;
    random;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive is replaced by a load balancing method given after it in the same upstream (one method per upstream) in bad.conf:2



=== TEST 39: random two least_conn after socketio_sticky
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky;
    random two least_conn;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive is replaced by a load balancing method given after it in the same upstream (one method per upstream) in bad.conf:2



=== TEST 40: ip_hash after socketio_sticky with route labels
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky route=^(b[0-9]+)-;
    socketio_sticky_route b1 127.0.0.1:8001;
    server 127.0.0.1:8001;
    ip_hash;
}
--- error_log
"socketio_sticky" directive is replaced by a load balancing method given after it in the same upstream (one method per upstream) in bad.conf:2



=== TEST 41: route= with an invalid regex
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky route=^(b[0-9]+-;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid regex in "route=^(b[0-9]+-": <any> in bad.conf:2



=== TEST 42: route= without a capture group
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky route=^b[0-9]+-;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has a regex without a capture group in "route=^b[0-9]+-" in bad.conf:2



=== TEST 43: route= twice
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky route=(.) route=(..);
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has parameter "route" twice in bad.conf:2



=== TEST 44: socketio_sticky_route names no server of the upstream
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky route=^(b[0-9]+)-;
    server 127.0.0.1:8001;
    socketio_sticky_route b2 127.0.0.1:8002;
}
--- error_log
"socketio_sticky_route" directive label "b2" names "127.0.0.1:8002", which is not a server of this upstream in bad.conf:4



=== TEST 45: socketio_sticky_route names a backup server
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky route=^(b[0-9]+)-;
    server 127.0.0.1:8001;
    server 127.0.0.1:8003 backup;
    socketio_sticky_route b3 127.0.0.1:8003;
}
--- error_log
"socketio_sticky_route" directive label "b3" names the backup server "127.0.0.1:8003" (routes go to primary servers only) in bad.conf:5



=== TEST 46: socketio_sticky_route without route=
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky;
    socketio_sticky_route b1 127.0.0.1:8001;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky_route" directive needs "route=" in the "socketio_sticky" directive of upstream "backend" in bad.conf:3



=== TEST 47: socketio_sticky_route in an upstream without socketio_sticky
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky_route b1 127.0.0.1:8001;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky_route" directive needs "socketio_sticky" in the same upstream in bad.conf:2



=== TEST 48: the same label twice
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky route=^(b[0-9]+)-;
    socketio_sticky_route b1 127.0.0.1:8001;
    socketio_sticky_route b1 127.0.0.1:8002;
    server 127.0.0.1:8001;
    server 127.0.0.1:8002;
}
--- error_log
"socketio_sticky_route" directive has label "b1" more than once in the upstream in bad.conf:4



=== TEST 49: an empty label
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky route=^(b[0-9]+)-;
    socketio_sticky_route "" 127.0.0.1:8001;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky_route" directive has invalid label "" in bad.conf:3



=== TEST 50: a label with a space
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky route=^(b[0-9]+)-;
    socketio_sticky_route "b 1" 127.0.0.1:8001;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky_route" directive has invalid label "b 1" in bad.conf:3



=== TEST 51: socketio_sticky_route with one argument: nginx's own message
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky route=^(b[0-9]+)-;
    socketio_sticky_route b1;
    server 127.0.0.1:8001;
}
--- error_log
invalid number of arguments in "socketio_sticky_route" directive in bad.conf:3



=== TEST 52: cookie= with an invalid name
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky "cookie=a;b";
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid cookie name "a;b" in bad.conf:2



=== TEST 53: an empty cookie=
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid cookie name "" in bad.conf:2



=== TEST 54: cookie=io: the cookie the session id is read from by default
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=io;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has "cookie=io", the cookie the session id is read from ("cookie:io" of "sid="): the route cookie needs a name of its own in bad.conf:2



=== TEST 55: cookie=IO: cookie names of sources are matched without case
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=IO;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has "cookie=IO", the cookie the session id is read from ("cookie:IO" of "sid="): the route cookie needs a name of its own in bad.conf:2



=== TEST 56: cookie= naming a cookie: source of sid=
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky sid=arg:sid,cookie:engine cookie=engine;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has "cookie=engine", the cookie the session id is read from ("cookie:engine" of "sid="): the route cookie needs a name of its own in bad.conf:2



=== TEST 57: a cookie attribute without cookie=
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie_path=/socket.io/;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has "cookie_path=/socket.io/" without "cookie=" in bad.conf:2



=== TEST 58: cookie_samesite=none without cookie_secure
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=r cookie_samesite=none;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has "cookie_samesite=none" without "cookie_secure" (browsers reject such cookies) in bad.conf:2



=== TEST 59: cookie_max_age=0
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=r cookie_max_age=0;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid value in "cookie_max_age=0" in bad.conf:2



=== TEST 60: cookie_max_age not a number
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=r cookie_max_age=soon;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid value in "cookie_max_age=soon" in bad.conf:2



=== TEST 61: a relative cookie_path
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=r cookie_path=socket.io;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid value in "cookie_path=socket.io" in bad.conf:2



=== TEST 62: cookie_secure=yes
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=r cookie_secure=yes;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid value in "cookie_secure=yes" in bad.conf:2



=== TEST 63: cookie_httponly=maybe
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=r cookie_httponly=maybe;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid value in "cookie_httponly=maybe" in bad.conf:2



=== TEST 64: cookie_samesite with an unknown value
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=r cookie_samesite=sometimes;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid value in "cookie_samesite=sometimes" in bad.conf:2



=== TEST 65: an invalid cookie_domain
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=r cookie_domain=a/b;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid value in "cookie_domain=a/b" in bad.conf:2



=== TEST 66: an empty cookie_key
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=r cookie_key=;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has invalid value in "cookie_key=" in bad.conf:2



=== TEST 67: cookie= twice
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=r cookie=s;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has parameter "cookie" twice in bad.conf:2



=== TEST 68: an unknown cookie_ parameter
--- user_files
>>> bad.conf
upstream backend {
    socketio_sticky cookie=r cookie_expires=1h;
    server 127.0.0.1:8001;
}
--- error_log
"socketio_sticky" directive has unknown parameter "cookie_expires=1h" in bad.conf:2



