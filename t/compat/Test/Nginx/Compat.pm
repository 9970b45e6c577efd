package Test::Nginx::Compat;

# Engine of the project's bundled, Test::Nginx-compatible test runner.
#
# This module is only ever put on @INC (via `prove -I t/compat`, see
# t/prove) when the real Test::Nginx from CPAN is NOT installed.  The
# user-facing entry point is t/compat/Test/Nginx/Socket.pm, which is a thin
# Test::Base subclass re-exporting the functions defined here.
#
# It is an independent implementation of the documented behaviour of
# Test::Nginx::Socket (block sections, environment variables, the number
# and names of the assertions), restricted to the subset the project uses.
# The supported subset and the known differences are documented at the end
# of this file (perldoc t/compat/Test/Nginx/Compat.pm).

use strict;
use warnings;
use v5.10.1;

use Cwd ();
use File::Spec ();
use File::Path qw(make_path remove_tree);
use File::Temp ();
use IO::Select ();
use IO::Socket::INET ();
use IO::Socket::UNIX ();
use List::Util qw(shuffle);
use POSIX ();
use Scalar::Util qw(looks_like_number);
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(sleep time);

use HTTP::Response ();
use Test::More ();
use Test::LongString ();
use Digest::MD5 ();
use Digest::SHA ();
use JSON::PP ();

our $VERSION = '0.001';

# Functions the user-facing Test::Nginx::Socket re-exports (same names and
# prototypes as the real module, so .t files parse identically).
our @USER_FUNCS = qw(
    env_to_nginx is_str run_tests run_test
    repeat_each config_preamble worker_connections
    master_process_enabled
    no_long_string workers master_on master_off
    log_level no_shuffle no_root_location use_hup
    server_name
    server_addr server_root html_dir server_port server_port_for_client
    timeout no_nginx_manager check_accum_error_log
    add_block_preprocessor bail_out add_test_cleanup_handler add_cleanup_handler
    add_response_body_check
);

# Modes of the real module that this runner does not implement.
our @UNSUPPORTED_ENV = qw(TEST_NGINX_VALGRIND_EXIT_ON_FIRST_ERR
    TEST_NGINX_USE_STAP TEST_NGINX_USE_RR TEST_NGINX_CHECK_LEAK
    TEST_NGINX_BENCHMARK TEST_NGINX_USE_HTTP2 TEST_NGINX_USE_HTTP3
    TEST_NGINX_NO_NGINX_MANAGER TEST_NGINX_NO_CLEAN TEST_NGINX_ERROR_LOG);

# Further functions reachable as Test::Nginx::Socket::NAME.
our @EXTRA_FUNCS = qw(set_http_config_filter expand_env_in_text parse_time
                      error_log_data access_log_data);

# ---------------------------------------------------------------------------
# settings (same environment variables and defaults as the real module,
# except for the server port, see below)
# ---------------------------------------------------------------------------

our $RepeatEach           = 1;
our $Workers              = 1;
our $WorkerConnections    = 64;
our $LogLevel             = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $DaemonEnabled        = 'on';
our $NoShuffle            = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $NoRootLocation       = 0;
our $NoLongString;
our $Timeout              = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $TestNginxSleep       = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $ServerAddr           = '127.0.0.1';
our $ServerName           = 'localhost';
our $ConfigPreamble       = '';
our $CheckAccumErrLog     = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $NginxBinary          = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $LoadModules          = $ENV{TEST_NGINX_LOAD_MODULES};
our $WorkerUser           = $ENV{TEST_NGINX_WORKER_USER};
our $EventType            = $ENV{TEST_NGINX_EVENT_TYPE};
our $PostponeOutput       = $ENV{TEST_NGINX_POSTPONE_OUTPUT};
our $Verbose              = $ENV{TEST_NGINX_VERBOSE};
our $Randomize            = $ENV{TEST_NGINX_RANDOMIZE};
our $FastShutdown         = $ENV{TEST_NGINX_FAST_SHUTDOWN};
our $UseHup               = $ENV{TEST_NGINX_USE_HUP};

# Valgrind mode (see "VALGRIND MODE" in the POD): nginx runs under valgrind
# memcheck, every wait of the runner is scaled by $ValgrindFactor, and the
# records valgrind writes are checked after every block.
our $UseValgrind          = $ENV{TEST_NGINX_USE_VALGRIND};
undef $UseValgrind if defined $UseValgrind && !$UseValgrind;
our $ValgrindBinary       = $ENV{TEST_NGINX_VALGRIND_BINARY} || 'valgrind';
our $ValgrindFactor       = 1;
if ($UseValgrind) {
    my $f = $ENV{TEST_NGINX_VALGRIND_TIMEOUT_FACTOR};
    $ValgrindFactor = defined $f && looks_like_number($f) && $f > 0 ? $f : 5;
    # the pause after starting nginx and before reading the logs
    $TestNginxSleep *= $ValgrindFactor unless $ENV{TEST_NGINX_SLEEP};
}

our (@BlockPreprocessors, @ResponseBodyChecks, @CleanupHandlers,
     @TestCleanupHandlers, @EnvToNginx);
our $FilterHttpConfig;

if (defined $WorkerUser && $WorkerUser !~ /^\w[-\w]+(?:\s+\w[-\w]+)?$/) {
    die "Bad value in the env TEST_NGINX_WORKER_USER: $WorkerUser\n";
}

our $MainPid = $$;
our $InSubprocess = 0;

# Linux prctl(2), best effort (no-op where unavailable).
sub _prctl ($$) {
    my ($option, $arg) = @_;
    eval {
        no warnings;
        local $SIG{__WARN__} = sub {};
        local $SIG{__DIE__};
        require 'syscall.ph';
        syscall(&SYS_prctl(), $option, $arg, 0, 0, 0);
    };
}

# Become a "child subreaper" so that the daemonized nginx, once orphaned,
# is reparented to us and can be reaped.
_prctl(36, 1);      # PR_SET_CHILD_SUBREAPER

srand($$ ^ int(time() * 1000));

# The real module defaults to port 1984.  Here a free port on 127.0.0.1 is
# picked once per test file unless TEST_NGINX_SERVER_PORT / TEST_NGINX_PORT
# is given, so that a busy 1984 (or another nginx) never gets in the way.
our $ServerPort = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT};
if (!$ServerPort || $Randomize) {
    $ServerPort = pick_free_port({});
    die "Test::Nginx (compat): cannot find a free port on 127.0.0.1\n"
        unless $ServerPort;
}
our $ServerPortForClient = $Randomize
    ? $ServerPort
    : ($ENV{TEST_NGINX_CLIENT_PORT} || $ENV{TEST_NGINX_PORT} || $ServerPort);

our $ServRoot;
if ($Randomize) {
    $ServRoot = File::Spec->rel2abs("t/servroot_$ServerPort");
} else {
    $ServRoot = File::Spec->rel2abs($ENV{TEST_NGINX_SERVROOT} || 't/servroot');
}

our $LogDir     = File::Spec->catfile($ServRoot, 'logs');
our $ErrLogFile = File::Spec->catfile($LogDir, 'error.log');
our $AccLogFile = File::Spec->catfile($LogDir, 'access.log');
our $HtmlDir    = File::Spec->catfile($ServRoot, 'html');
our $ConfDir    = File::Spec->catfile($ServRoot, 'conf');
our $ConfFile   = File::Spec->catfile($ConfDir, 'nginx.conf');
our $PidFile    = File::Spec->catfile($LogDir, 'nginx.pid');
our $CacheDir   = File::Spec->catfile($ServRoot, 'cache');
our $StderrFile = File::Spec->catfile($ServRoot, 'nginx.stderr');
my  $Marker     = File::Spec->catfile($ServRoot, '.test-nginx-compat');

my $PortEnvFromUser = defined $ENV{TEST_NGINX_SERVER_PORT} && !$Randomize;
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
$ENV{TEST_NGINX_SERVER_PORT} = $ServerPort unless $PortEnvFromUser;
$ENV{TEST_NGINX_HTML_DIR}    //= $HtmlDir;

# runtime state
our $NginxVersion;          # canonical, e.g. 1.028003
our $NginxRawVersion;
our $NginxV = '';           # output of nginx -V
our $OpenSSLVersion;
our $NginxPid;              # pid of the running nginx (master or single)
our $TcpServerPid;
our $RandPorts = {};
our $ErrLogFilePos = 0;
# Where the current block's lines start in error.log / access.log: 0 when
# nginx was started for the block, the length of the file before the reload
# (or before the block) in HUP mode.
our $ErrLogBase = 0;
our $AccLogBase = 0;
our $HupBlock;              # HUP mode: the block whose nginx is still running
our $PrevConfigFile;        # text of the last nginx.conf written
our $RequestExpandNoted;

# ---------------------------------------------------------------------------
# user-level settings functions (prototypes as in the real module)
# ---------------------------------------------------------------------------

sub repeat_each (@) {
    $RepeatEach = shift if @_;
    return $RepeatEach;
}

sub workers (@) {
    if (@_) { $Workers = shift; return }
    return $Workers;
}

sub worker_connections (@) {
    if (@_) { $WorkerConnections = shift; return }
    return $WorkerConnections;
}

sub log_level (@) {
    if (@_) { $LogLevel = shift; return }
    return $LogLevel;
}

sub master_on ()  { $MasterProcessEnabled = 'on' }
sub master_off () { $MasterProcessEnabled = 'off' }

sub master_process_enabled (@) {
    if (@_) { $MasterProcessEnabled = shift() ? 'on' : 'off'; return }
    return $MasterProcessEnabled;
}

sub no_shuffle ()        { $NoShuffle = 1 }
sub no_long_string ()    { $NoLongString = 1 }
sub no_root_location ()  { $NoRootLocation = 1 }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub config_preamble ($)  { $ConfigPreamble = shift }

sub no_nginx_manager () {
    Test::More::diag("no_nginx_manager() is not supported by the bundled "
                     . "Test::Nginx compat runner; ignored");
}

# HUP mode: nginx keeps running from one block to the next; a block with
# its own --- config gets it by a reload (SIGHUP to the master).
sub use_hup () { $UseHup = 1 }

sub timeout (@) {
    if (@_) { $Timeout = shift; return }
    return $Timeout;
}

sub server_addr (@) {
    if (@_) { $ServerAddr = shift; return }
    return $ServerAddr;
}

sub server_name (@) {
    if (@_) { $ServerName = shift; return }
    return $ServerName;
}

sub server_port (@) {
    if (@_) { $ServerPort = shift; return }
    return $ServerPort;
}

sub server_port_for_client (@) {
    if (@_) { $ServerPortForClient = shift; return }
    return $ServerPortForClient;
}

sub server_root () { $ServRoot }
sub html_dir ()    { $HtmlDir }

sub env_to_nginx (@) {
    die "env_to_nginx: no arguments specified\n" unless @_;
    for my $v (@_) {
        die "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_response_body_check ($) { push @ResponseBodyChecks, shift }
sub add_cleanup_handler ($)      { unshift @CleanupHandlers, shift }
sub add_test_cleanup_handler ($) { unshift @TestCleanupHandlers, shift }
sub set_http_config_filter ($)   { $FilterHttpConfig = shift }

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $desc);
    }
    return Test::More::is($got, $expected, $desc) if $NoLongString;
    return Test::LongString::is_string($got, $expected, $desc);
}

# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

sub _log {
    warn "[compat] ", @_, "\n" if $Verbose;
}

# A time limit of the runner, longer under valgrind (nginx runs 10 to 50
# times slower there).  `--- wait` is not scaled: it is test logic.
sub _scaled ($) {
    my $secs = shift;
    return $secs * $ValgrindFactor;
}

sub parse_time ($) {
    my $t = shift;
    return undef unless defined $t;
    $t =~ s/^\s+|\s+$//g;
    if ($t =~ /^([\d.]+)\s*ms$/) {
        return $1 / 1000;
    }
    if ($t =~ /^([\d.]+)\s*s$/) {
        return $1 + 0;
    }
    return $t;
}

sub _fmt ($) {
    my $s = shift;
    $s = "$s";
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

# A failing assertion whose (multi-line) description has no trailing blanks.
sub _fail ($) {
    my $msg = shift;
    $msg =~ s/\s+$//;
    return Test::More::fail($msg);
}

# One assertion, or its "skip" twin when running in dry-run mode.
sub _check ($$$) {
    my ($dry_run, $what, $code) = @_;
    if ($dry_run) {
        SKIP: { Test::More::skip("$what - tests skipped due to $dry_run", 1) }
        return;
    }
    $code->();
}

sub _port_range {
    my ($lo, $hi) = (10000, 32767);
    if (open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
        my $l = <$fh>;
        close $fh;
        if ($l && $l =~ /^\s*(\d+)\s+(\d+)/) {
            my ($elo, $ehi) = ($1, $2);
            if ($elo - 1 > $lo + 1000) {
                $hi = $elo - 1;
            } elsif ($ehi + 1000 < 65535) {
                ($lo, $hi) = ($ehi + 1, 65535);
            }
        }
    }
    return ($lo, $hi);
}

sub _port_free ($) {
    my $port = shift;
    my $sock = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => $port,
        Proto     => 'tcp',
        Listen    => 1,
        ReuseAddr => 1,
    );
    return 0 unless $sock;
    close $sock;
    return 1;
}

# A currently free TCP port on 127.0.0.1 not in %$used.
sub pick_free_port {
    my ($used) = @_;
    $used ||= {};
    my ($lo, $hi) = _port_range();
    for (1 .. 500) {
        my $port = $lo + int rand($hi - $lo + 1);
        next if $used->{$port};
        return $port if _port_free($port);
    }
    for (1 .. 20) {
        my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                         LocalPort => 0, Proto => 'tcp',
                                         Listen => 1) or next;
        my $port = $sock->sockport;
        close $sock;
        return $port unless $used->{$port};
    }
    return undef;
}

sub expand_env_in_text ($$$) {
    my ($text, $name, $rand_ports) = @_;
    return $text unless defined $text;
    $rand_ports ||= $RandPorts;

    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        my $val;
        if ($var =~ /^TEST_NGINX_RAND_PORT_[0-9]+$/) {
            if (!defined $rand_ports->{$var}) {
                my %used = ($ServerPort => 1,
                            map { $_ => 1 } values %$rand_ports);
                my $p = pick_free_port(\%used);
                bail_out("$name - Cannot find an available listening port "
                         . "number for $var.\n") unless $p;
                $rand_ports->{$var} = $p;
            }
            $val = $rand_ports->{$var};
        } else {
            bail_out("$name - No environment $var defined.\n")
                unless defined $ENV{$var};
            $val = $ENV{$var};
        }
        $val;
    }ge;

    return $text;
}

sub _slurp ($) {
    my $f = shift;
    open my $in, '<', $f or return undef;
    binmode $in;
    local $/;
    my $d = <$in>;
    close $in;
    return $d;
}

# ---------------------------------------------------------------------------
# process helpers
# ---------------------------------------------------------------------------

sub _proc_state ($) {
    my $pid = shift;
    my $s = _slurp("/proc/$pid/stat");
    return undef unless defined $s;
    return $s =~ /.*\)\s+(\S)\s+(\d+)/s ? ($1, $2) : undef;
}

# A zombie counts as gone (PID 1 of a container may never reap the daemon).
sub is_running ($) {
    my $pid = shift;
    return 0 unless $pid && $pid =~ /^\d+$/ && $pid > 1;
    return 0 unless kill 0, $pid;
    my ($state) = _proc_state($pid);
    return 0 if defined $state && ($state eq 'Z' || $state eq 'X');
    return 1;
}

sub _children_of ($) {
    my $ppid = shift;
    my @kids;
    opendir my $dh, '/proc' or return ();
    for my $d (readdir $dh) {
        next unless $d =~ /^\d+$/;
        my (undef, $parent) = _proc_state($d);
        push @kids, $d if defined $parent && $parent == $ppid;
    }
    closedir $dh;
    return @kids;
}

sub _looks_like_nginx ($) {
    my $pid = shift;
    my $cmd = _slurp("/proc/$pid/cmdline") // '';
    my $comm = _slurp("/proc/$pid/comm") // '';
    return "$cmd $comm" =~ /nginx/;
}

sub _read_pid_file () {
    my $pid = _slurp($PidFile);
    return undef unless defined $pid;
    $pid =~ s/\s+//g;
    return $pid =~ /^\d+$/ ? $pid : undef;
}

# Stop a process (and its children, i.e. nginx workers), waiting until all
# of them are really gone.  QUIT first (graceful, like the real module),
# then TERM, then KILL.
sub kill_process_tree ($$) {
    my ($pid, $what) = @_;
    return unless defined $pid;
    my @all = ($pid, _children_of($pid));
    my $first = $FastShutdown ? 'TERM' : 'QUIT';

    my $wait_gone = sub {
        my $secs = shift;
        my $deadline = time + $secs;
        while (time < $deadline) {
            waitpid($_, POSIX::WNOHANG()) for @all;
            return 1 unless grep { is_running($_) } @all;
            sleep 0.02;
        }
        return !grep { is_running($_) } @all;
    };

    kill $first, $pid;
    return if $wait_gone->(_scaled($Timeout > 1 ? $Timeout : 1));

    push @all, map { _children_of($_) } @all;
    warn "WARNING: $what - nginx (pid $pid) did not exit on SIG$first; "
         . "sending TERM\n";
    kill 'TERM', grep { is_running($_) } @all;
    return if $wait_gone->(_scaled(1));

    warn "WARNING: $what - killing nginx (pid $pid) with SIGKILL\n";
    kill 'KILL', grep { is_running($_) } @all;
    $wait_gone->(2);
}

# Stops the nginx this process started (if any).
sub stop_nginx ($) {
    my $what = shift;
    my $pid = $NginxPid;
    undef $NginxPid;
    return unless defined $pid;
    if (is_running($pid)) {
        kill_process_tree($pid, $what);
    }
    my $in_file = _read_pid_file();
    unlink $PidFile if defined $in_file && $in_file == $pid;
}

sub stop_tcp_server () {
    my $pid = $TcpServerPid;
    undef $TcpServerPid;
    return unless $pid;
    kill 'TERM', $pid;
    my $deadline = time + 2;
    while (time < $deadline) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        return if $r == $pid || $r == -1;
        sleep 0.01;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

# An nginx left over from an interrupted earlier run that uses our servroot.
sub _kill_stale_nginx () {
    my $pid = _read_pid_file();
    if ($pid && is_running($pid) && _looks_like_nginx($pid)) {
        warn "WARNING: found a running nginx (pid $pid) using $ServRoot; "
             . "stopping it\n";
        kill_process_tree($pid, 'stale');
    }
    unlink $PidFile if -f $PidFile;
}

sub cleanup () {
    return if $InSubprocess || $$ != $MainPid;
    for my $hdl (@CleanupHandlers) {
        eval { $hdl->() };
        warn $@ if $@;
    }
    stop_tcp_server();
    stop_nginx('cleanup');
}

my $SignalsInstalled;

# Stop nginx when the test process is interrupted.  SIGPIPE matters too:
# e.g. `t/prove ... | head` kills the test process while it prints TAP.
# (Sockets to nginx ignore SIGPIPE locally.)
sub _install_signal_handlers () {
    return if $SignalsInstalled++;
    for my $sig (qw(INT TERM HUP PIPE QUIT)) {
        $SIG{$sig} = sub {
            return if $InSubprocess || $$ != $MainPid;
            warn "caught SIG$sig, stopping nginx...\n";
            cleanup();
            $SIG{$sig} = 'DEFAULT';
            kill $sig, $$;
            POSIX::_exit(128 + 2);
        };
    }
}

# A tiny process that outlives us: when the test process dies in a way that
# skips all cleanup (SIGKILL, ...), it stops the nginx recorded in the pid
# file.  It notices our death as EOF on a pipe.
our ($WatchdogPid, $WatchdogFh);

sub _start_watchdog () {
    return if $WatchdogPid;
    pipe(my $r, my $w) or return;
    my $pid = fork;
    return unless defined $pid;
    if ($pid == 0) {
        $InSubprocess = 1;
        close $w;
        $SIG{$_} = 'IGNORE' for qw(INT HUP PIPE QUIT);
        $SIG{TERM} = 'DEFAULT';
        eval { $0 = "test-nginx-compat watchdog ($ServRoot)" };
        my $buf;
        while (1) {
            my $n = sysread($r, $buf, 64);
            last if defined $n && $n == 0;
            last if !defined $n && !$!{EINTR};
        }
        my $ngx = _read_pid_file();
        if ($ngx && is_running($ngx) && _looks_like_nginx($ngx)) {
            warn "test-nginx-compat watchdog: the test process died; "
                 . "stopping nginx (pid $ngx)\n";
            kill_process_tree($ngx, 'watchdog');
            unlink $PidFile;
        }
        POSIX::_exit(0);
    }
    close $r;
    ($WatchdogPid, $WatchdogFh) = ($pid, $w);
}

END {
    if (!$InSubprocess && defined $MainPid && $$ == $MainPid) {
        local $?;
        cleanup();
        if ($Randomize && defined $ServRoot && -e $Marker
            && $ServRoot =~ m{/t/servroot_\d+$})
        {
            remove_tree($ServRoot);
        }
    }
}

# ---------------------------------------------------------------------------
# nginx binary
# ---------------------------------------------------------------------------

sub _find_binary ($) {
    my $bin = shift;
    if ($bin =~ m{/}) {
        return -f $bin && -x _ ? $bin : undef;
    }
    for my $dir (split /:/, ($ENV{PATH} // '')) {
        next unless length $dir;
        my $p = "$dir/$bin";
        return $p if -f $p && -x _;
    }
    return undef;
}

# Runs a command, returns (exit status, combined stdout+stderr).
sub _run_capture (@) {
    my @cmd = @_;
    my $pid = open(my $fh, '-|');
    if (!defined $pid) {
        return (-1, "fork failed: $!");
    }
    if ($pid == 0) {
        $InSubprocess = 1;
        open STDERR, '>&', \*STDOUT;
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        print "exec $cmd[0] failed: $!\n";
        POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($?, $out);
}

sub canon_version (@) {
    sprintf "%d.%03d%03d", $_[0], $_[1], $_[2];
}

sub _init_nginx_info () {
    return if defined $NginxVersion;
    my $bin = _find_binary($NginxBinary);
    if (!$bin) {
        bail_out("Cannot find the nginx executable \"$NginxBinary\" "
                 . "(set TEST_NGINX_BINARY or PATH)");
    }
    my ($st, $out) = _run_capture($NginxBinary, '-V');
    if ($st != 0) {
        bail_out("Failed to run \"$NginxBinary -V\": $out");
    }
    $NginxV = $out;
    if ($out =~ /built with OpenSSL (\d+)\.(\d+)\.(\d+)([a-z])?/) {
        $OpenSSLVersion = canon_version($1, $2, $3)
                        . (defined $4 ? sprintf("%03d", ord($4) - ord('a')) : '');
    }
    if ($out =~ m{(?:nginx|openresty)[^/\s]*/(\d+)\.(\d+)\.(\d+)}s
        || $out =~ m{\w+/(\d+)\.(\d+)\.(\d+)}s)
    {
        $NginxRawVersion = "$1.$2.$3";
        $NginxVersion = canon_version($1, $2, $3);
    } else {
        bail_out("Failed to parse the output of \"nginx -V\": $out");
    }
}

# ---------------------------------------------------------------------------
# server root, user files, nginx.conf
# ---------------------------------------------------------------------------

sub setup_server_root () {
    if (-d $ServRoot) {
        if (-e $Marker) {
            # ours: wipe it completely
            my @entries;
            if (opendir my $dh, $ServRoot) {
                @entries = grep { $_ ne '.' && $_ ne '..' } readdir $dh;
                closedir $dh;
            }
            # valgrind's logs are kept for the whole test file
            @entries = grep { $_ ne 'valgrind' } @entries if $UseValgrind;
            remove_tree(map { "$ServRoot/$_" } @entries);
        } else {
            # be careful with a directory we did not create
            remove_tree($ConfDir, $LogDir, $HtmlDir, $CacheDir,
                        glob("$ServRoot/*_temp"), glob("$ServRoot/*_cache"));
        }
    }
    make_path($ServRoot, $ConfDir, $LogDir, $HtmlDir);
    for my $d ($ServRoot, $ConfDir, $LogDir, $HtmlDir) {
        bail_out("Failed to create directory $d") unless -d $d;
    }
    if (open my $m, '>', $Marker) { close $m }
    _write_index_html();
}

sub _write_index_html () {
    open my $out, '>', "$HtmlDir/index.html"
        or bail_out("Can't open $HtmlDir/index.html for writing: $!");
    print $out '<html><head><title>It works!</title></head>'
             . '<body>It works!</body></html>';
    close $out;
}

sub write_user_files ($) {
    my $block = shift;
    my $name  = $block->name;
    my $files = $block->user_files;
    return unless $files;

    if (!ref $files) {
        my @list;
        my ($fname, $date, $body);
        for my $line (split /^/m, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+?))?\s*$/) {
                push @list, [$fname, $body, $date] if defined $fname;
                ($fname, $date, $body) = ($1, $2, undef);
            } else {
                $body .= $line;
            }
        }
        push @list, [$fname, $body, $date] if defined $fname;
        $files = \@list;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type for --- user_files: " . ref $files);
    }

    for my $f (@$files) {
        my ($fname, $body, $date) = @$f;
        $body //= '';
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        if ($path =~ m{(.*)/}) {
            make_path($1) unless -d $1;
        }
        $body = expand_env_in_text($body, $name, $RandPorts);
        open my $out, '>', $path
            or bail_out("$name - Cannot open $path for writing: $!");
        binmode $out;
        print $out $body;
        close $out;
        if ($date) {
            local $ENV{TZ} = 'GMT';
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - failed to set the mtime of $path");
        }
    }
}

sub _main_conf_text ($$) {
    my ($block, $config) = @_;
    my $name = $block->name;

    my $http_config = expand_env_in_text($block->http_config, $name,
                                         $RandPorts) // '';
    $http_config = $FilterHttpConfig->($http_config) if $FilterHttpConfig;

    my $main_config = expand_env_in_text($block->main_config, $name,
                                         $RandPorts) // '';
    my $post_main_config = expand_env_in_text($block->post_main_config,
                                              $name, $RandPorts) // '';
    my $err_log_file = $block->error_log_file || $ErrLogFile;
    $err_log_file = expand_env_in_text($err_log_file, $name, $RandPorts);
    my $server_name = $block->server_name // $ServerName;
    $server_name =~ s/\\/\\\\/g;
    $server_name =~ s/'/\\'/g;
    $config //= '';

    my @modules = grep { length } split /\s+/, ($LoadModules // '');

    my $c = '';
    $c .= "# generated by the bundled Test::Nginx compat runner "
        . "(t/compat) for: $name\n";
    $c .= "load_module $_;\n" for @modules;
    $c .= "worker_processes $Workers;\n"
        . "daemon " . (_valgrind_for($block) ? 'off' : $DaemonEnabled) . ";\n"
        . "master_process " . ($UseHup ? 'on' : $MasterProcessEnabled) . ";\n"
        . "error_log $err_log_file $LogLevel;\n"
        . "pid $PidFile;\n";
    if (defined $WorkerUser) {
        $c .= "user $WorkerUser;\n";
    } elsif ($> == 0) {
        # workers must be able to read the test directories
        $c .= "user root;\n";
    }
    $c .= "env $_;\n" for qw(LD_PRELOAD LD_LIBRARY_PATH ASAN_OPTIONS);
    for my $v (@EnvToNginx) {
        $c .= $v =~ /\s/ ? "env '$v';\n" : "env $v;\n";
    }

    my @temp;
    for my $t (qw(fastcgi scgi uwsgi)) {
        next if $NginxV =~ /--without-http_${t}_module/;
        next if $http_config =~ /\b${t}_temp_path\b/;
        push @temp, "${t}_temp_path $ServRoot/${t}_temp;";
    }
    push @temp, "proxy_temp_path $ServRoot/proxy_temp;"
        unless $http_config =~ /\bproxy_temp_path\b/;
    push @temp, "client_body_temp_path $ServRoot/client_body_temp;"
        unless $http_config =~ /\bclient_body_temp_path\b/;

    my $postpone = '';
    if (defined $PostponeOutput && $http_config !~ /\bpostpone_output\b/) {
        bail_out("Bad TEST_NGINX_POSTPONE_OUTPUT value: $PostponeOutput")
            unless $PostponeOutput =~ /^\d+$/;
        $postpone = "    postpone_output $PostponeOutput;\n";
    }

    $c .= "\n$main_config\n\n";
    $c .= "http {\n";
    $c .= "    access_log $AccLogFile;\n";
    $c .= "    $_\n" for @temp;
    $c .= "    default_type text/plain;\n"
        . "    keepalive_timeout 68s;\n"
        . $postpone
        . "\n$http_config\n\n";
    $c .= "    server {\n"
        . "        listen $ServerAddr:$ServerPort;\n"
        . "        server_name '$server_name';\n"
        . "        client_max_body_size 30M;\n"
        . "\n        # preamble\n$ConfigPreamble\n"
        . "\n        # test block config\n$config\n"
        . "        # end of test block config\n\n";
    if (!$NoRootLocation) {
        $c .= "        location / {\n"
            . "            root $HtmlDir;\n"
            . "            index index.html index.htm;\n"
            . "        }\n";
    }
    $c .= "    }\n}\n\n$post_main_config\n\n";
    $c .= "events {\n"
        . "    accept_mutex off;\n"
        . "    worker_connections $WorkerConnections;\n";
    $c .= "    use $EventType;\n" if $EventType;
    $c .= "}\n";
    return $c;
}

sub _write_file ($$) {
    my ($path, $data) = @_;
    open my $out, '>', $path or bail_out("Can't open $path for writing: $!");
    print $out $data;
    close $out;
}

# ---------------------------------------------------------------------------
# starting nginx
# ---------------------------------------------------------------------------

# Starts @cmd in a child (stdin and stdout /dev/null, stderr to $StderrFile,
# TEST_NGINX_LD_PRELOAD added to LD_PRELOAD); returns its pid.
sub _spawn (@) {
    my @cmd = @_;
    unlink $StderrFile;
    my $pid = fork;
    if (!defined $pid) {
        bail_out("fork() failed: $!");
    }
    if ($pid == 0) {
        $InSubprocess = 1;
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP PIPE);
        close $WatchdogFh if $WatchdogFh;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $StderrFile;
        if (defined $ENV{TEST_NGINX_LD_PRELOAD}) {
            $ENV{LD_PRELOAD} = join ' ', grep { defined && length }
                                   $ENV{TEST_NGINX_LD_PRELOAD}, $ENV{LD_PRELOAD};
        }
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        print STDERR "exec $cmd[0] failed: $!\n";
        POSIX::_exit(127);
    }
    return $pid;
}

# Runs the nginx binary (which daemonizes).  Returns a hash:
#   status (wait status of the launcher or -1), exit_code, core, stderr.
sub _launch_nginx ($) {
    my $block = shift;
    my @cmd = ($NginxBinary);
    # -e (startup error log) exists since nginx 1.19.5
    push @cmd, '-e', $ErrLogFile if $NginxVersion >= 1.019005;
    push @cmd, '-p', "$ServRoot/", '-c', $ConfFile;
    return _launch_nginx_valgrind($block, \@cmd) if _valgrind_for($block);
    _log("starting: @cmd");

    my $pid = _spawn(@cmd);

    # nginx parses the config, binds, forks the daemon and its parent exits
    my $deadline = time + _scaled($Timeout > 10 ? $Timeout : 10);
    my $status;
    while (1) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        if ($r == $pid) { $status = $?; last }
        if ($r == -1) { $status = -1; last }
        if (time > $deadline) {
            warn "WARNING: nginx launcher (pid $pid) did not return; "
                 . "killing it\n";
            kill_process_tree($pid, $block->name);
            waitpid($pid, 0);
            $status = $?;
            last;
        }
        sleep 0.005;
    }
    my $stderr = _slurp($StderrFile) // '';
    my %r = (status => $status, stderr => $stderr);
    if ($status == -1) {
        $r{exec_failed} = 1;
    } else {
        $r{exit_code} = $status >> 8;
        $r{signal}    = $status & 127;
        $r{core}      = $status & 128;
    }
    $r{exec_failed} = 1 if ($r{exit_code} // 0) == 127
                           && $stderr =~ /^exec .* failed/m;
    return \%r;
}

# ---------------------------------------------------------------------------
# valgrind mode (TEST_NGINX_USE_VALGRIND): nginx runs under valgrind memcheck
# (daemon off); every process writes its own log (--log-file=...%p), which
# is parsed into records after every block.  A record with a frame of the
# module under test fails the block; other records are notes.
# ---------------------------------------------------------------------------

our $VgDir    = File::Spec->catfile($ServRoot, 'valgrind');
our $VgRawDir = File::Spec->catfile($VgDir, 'raw');
our (@VgSuppressions, $VgModuleRe, $VgGenSupp);
our (%VgOffset, %VgPending, %VgProcBlock);
our $VgBlockSeq = 0;
our $VgBlockStart;          # when the current block started (or nginx stopped)
our %VgTotals = map { ($_ => 0) }
    qw(blocks records module other failing ignored warnings);

# Does this block's nginx run under valgrind?  Not a --- must_die block (as
# in the real module: nginx is expected to exit at once there).
sub _valgrind_for ($) {
    my $block = shift;
    return 0 unless $UseValgrind;
    return 0 if defined $block && defined $block->must_die;
    return 1;
}

sub _valgrind_command () {
    my @vg = ($ValgrindBinary);
    if ($UseValgrind =~ /^\d+$/) {
        # the real Test::Nginx's options
        push @vg, qw(--num-callers=100 -q --tool=memcheck --leak-check=full
                     --keep-debuginfo=yes --show-possibly-lost=no
                     --gen-suppressions=all);
    } else {
        # the variable names valgrind's options
        push @vg, '-q', split(' ', $UseValgrind);
    }
    push @vg, map { "--suppressions=$_" } @VgSuppressions;
    # (last, so that it wins: the runner reads the records from there)
    push @vg, "--log-file=$VgRawDir/vg.%p.log";
    return @vg;
}

# Frames of the module under test: the .so files of TEST_NGINX_LOAD_MODULES
# ("(in /path/lib....so)" when the object has no line tables), the Rust
# crate of a lib<crate>.so ("<crate>::..."), TEST_NGINX_VALGRIND_MODULE_FRAMES
# (a Perl regex, e.g. for C modules built with line tables, whose frames
# name source files instead of the object).
sub _vg_module_re () {
    my @alts;
    my $extra = $ENV{TEST_NGINX_VALGRIND_MODULE_FRAMES};
    if (defined $extra && length $extra) {
        eval { qr/$extra/ } or bail_out("bad TEST_NGINX_VALGRIND_MODULE_FRAMES "
                                        . "regex: $@");
        push @alts, "(?:$extra)";
    }
    for my $so (grep { length } split /\s+/, ($LoadModules // '')) {
        push @alts, '\(in ' . quotemeta($so) . '\)';
        (my $base = $so) =~ s{.*/}{};
        push @alts, '\(in \S*/' . quotemeta($base) . '\)';
        if ($base =~ /^lib(\w+)\.so$/) {
            push @alts, '(?<![\w:])' . quotemeta($1) . '::';
        }
    }
    return undef unless @alts;
    my $re = join '|', @alts;
    return qr/$re/;
}

sub _vg_init () {
    return unless $UseValgrind;
    _find_binary($ValgrindBinary)
        or bail_out("TEST_NGINX_USE_VALGRIND is set, but \"$ValgrindBinary\" "
                    . "is not found (install valgrind or set "
                    . "TEST_NGINX_VALGRIND_BINARY)");
    my %seen;
    @VgSuppressions = ();
    for my $f ('t/valgrind.suppress', 'valgrind.suppress',
               split(' ', $ENV{TEST_NGINX_VALGRIND_SUPPRESSIONS} // ''))
    {
        my $abs = File::Spec->rel2abs($f);
        next if $seen{$abs}++;
        if (-f $abs) {
            push @VgSuppressions, $abs;
        } elsif ($f !~ /^(?:t\/)?valgrind\.suppress$/) {
            bail_out("valgrind suppression file $f not found");
        }
    }
    $VgModuleRe = _vg_module_re();
    $VgGenSupp = $UseValgrind =~ /^\d+$/
                 || $UseValgrind =~ /--gen-suppressions=(?:all|yes)/;
    remove_tree($VgDir);
    make_path($VgRawDir, "$VgDir/blocks");
    bail_out("Failed to create directory $VgRawDir") unless -d $VgRawDir;
    _vg_write_summary();
    Test::More::diag("valgrind mode: nginx runs under @{[ _valgrind_command() ]}"
                     . " (time limits x$ValgrindFactor)") if $Verbose;
}

# nginx under valgrind with daemon off: the process we start is nginx (the
# master, or the single process).  It counts as started once it has written
# its pid file (configuration parsed, sockets bound).
sub _launch_nginx_valgrind ($$) {
    my ($block, $ngx) = @_;
    my @cmd = (_valgrind_command(), @$ngx);
    _log("starting: @cmd");
    make_path($VgRawDir) unless -d $VgRawDir;

    my $pid = _spawn(@cmd);

    my $limit = _scaled($Timeout > 10 ? $Timeout : 10);
    my $deadline = time + $limit;
    my $status;
    while (1) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        if ($r == $pid) {
            $status = $?;
            # exited at once: a failure even with status 0 (daemon off)
            $status = 1 << 8 if $status == 0;
            last;
        }
        my $in_file = _read_pid_file();
        if (defined $in_file && $in_file == $pid) { $status = 0; last }
        if (time > $deadline) {
            warn "WARNING: " . $block->name . " - nginx under valgrind (pid "
                 . "$pid) did not write its pid file within ${limit}s; "
                 . "stopping it\n";
            kill_process_tree($pid, $block->name);
            waitpid($pid, 0);
            $status = $? || (1 << 8);
            last;
        }
        sleep 0.02;
    }
    my $stderr = _slurp($StderrFile) // '';
    my %r = (status => $status, stderr => $stderr);
    $r{exit_code} = $status >> 8;
    $r{signal}    = $status & 127;
    $r{core}      = $status & 128;
    $r{exec_failed} = 1 if $r{exit_code} == 127
                           && $stderr =~ /^exec .* failed/m;
    return \%r;
}

# The part of $text (valgrind output of one process, complete lines) that
# holds complete records: each one ends with a "==PID== " line, followed
# (with --gen-suppressions) by its "{ ... }" suppression.  Returns (done,
# rest).  When the process has exited, everything is done.
sub _vg_split_complete ($$) {
    my ($text, $exited) = @_;
    return ($text, '') if $exited;
    my ($off, $boundary, $candidate, $in_supp) = (0, 0, undef, 0);
    for my $l (split /^/m, $text) {
        $off += length $l;
        if ($in_supp) {
            if ($l =~ /^\}\s*$/) { $in_supp = 0; $boundary = $off }
            next;
        }
        if ($l =~ /^\{\s*$/) { $in_supp = 1; undef $candidate; next }
        if ($l =~ /^==\d+==\s*$/) {
            if ($VgGenSupp) { $candidate = $off } else { $boundary = $off }
            next;
        }
        # a record (or a warning) without a suppression block
        if (defined $candidate) { $boundary = $candidate; undef $candidate }
    }
    return (substr($text, 0, $boundary), substr($text, $boundary));
}

# Records of valgrind output: { pid, header, text, suppression, kind }.
# kind: error, leak (definitely / indirectly lost), ignored (possibly lost,
# still reachable), warning (a valgrind warning, no error).
sub _vg_parse ($) {
    my $text = shift;
    my (@recs, $cur, $supp);
    for my $line (split /^/m, $text) {
        if ($supp) {
            $supp->{suppression} .= $line;
            undef $supp if $line =~ /^\}\s*$/;
            next;
        }
        if ($line =~ /^==(\d+)==(.*)$/s) {
            my ($pid, $body) = ($1, $2);
            $body =~ s/\n\z//;
            if ($body !~ /\S/) {            # end of a record
                push @recs, $cur if $cur;
                undef $cur;
                next;
            }
            if ($cur && $body =~ /^ \s/) {  # "==PID==    at 0x...", "==PID==  Address ..."
                $cur->{text} .= $line;
                next;
            }
            push @recs, $cur if $cur;
            (my $h = $body) =~ s/^\s+//;
            $cur = { pid => $pid, header => $h, text => $line,
                     suppression => '' };
            next;
        }
        if ($line =~ /^\{\s*$/) {
            push @recs, $cur if $cur;
            undef $cur;
            # the suppression of the record just before
            $supp = @recs ? $recs[-1] : { suppression => '' };
            $supp->{suppression} .= $line;
            next;
        }
        if ($cur) {
            $cur->{text} .= $line;
        } elsif (@recs) {
            $recs[-1]{text} .= $line;
        } elsif ($line =~ /\S/) {
            push @recs, { pid => 0, header => $line, text => $line,
                          suppression => '' };
            chomp $recs[-1]{header};
        }
    }
    push @recs, $cur if $cur;
    for my $r (@recs) {
        my $h = $r->{header};
        my $stack = $r->{text} =~ /^==\d+==\s+(?:at|by) 0x/m;
        if ($h =~ /\bbytes in [\d,]+ blocks are (definitely|indirectly) lost\b/) {
            $r->{kind} = 'leak';
        } elsif ($h =~ /\bbytes in [\d,]+ blocks are (?:possibly lost|still reachable)\b/) {
            $r->{kind} = 'ignored';
        } elsif ($h =~ /^Warning:/ || !$stack) {
            $r->{kind} = 'warning';
        } else {
            $r->{kind} = 'error';
        }
        $r->{module} = defined $VgModuleRe && $r->{text} =~ $VgModuleRe ? 1 : 0;
    }
    return @recs;
}

# Reads what the processes logged since the last call.  Returns the text of
# complete records, per process: [pid, text, block that was running when
# the process's log first appeared].
sub _vg_collect ($$) {
    my ($block, $final) = @_;
    my @out;
    opendir my $dh, $VgRawDir or return ();
    my @files = sort grep { /^vg\.\d+\.log$/ } readdir $dh;
    closedir $dh;
    for my $f (@files) {
        my ($pid) = $f =~ /(\d+)/;
        my $path = "$VgRawDir/$f";
        $VgProcBlock{$pid} //= $block;
        my $exited = $final || !is_running($pid);
        my $data = '';
        if (open my $in, '<', $path) {
            binmode $in;
            seek $in, $VgOffset{$path} // 0, 0;
            local $/;
            $data = <$in> // '';
            close $in;
        }
        # complete lines only, unless the process is gone
        if (!$exited) {
            my $nl = rindex($data, "\n");
            $data = $nl >= 0 ? substr($data, 0, $nl + 1) : '';
        }
        $VgOffset{$path} = ($VgOffset{$path} // 0) + length $data;
        my $text = ($VgPending{$pid} // '') . $data;
        my ($done, $rest) = _vg_split_complete($text, $exited);
        $VgPending{$pid} = $rest;
        push @out, [$pid, $done, $VgProcBlock{$pid}] if length $done;
        if ($exited) {
            unlink $path;
            delete $VgOffset{$path};
            delete $VgPending{$pid};
            delete $VgProcBlock{$pid};
        }
    }
    return @out;
}

sub _vg_append ($$) {
    my ($path, $data) = @_;
    open my $out, '>>', $path or return;
    binmode $out;
    print $out $data;
    close $out;
}

sub _vg_write_summary () {
    my $s = join '', map { "$_=$VgTotals{$_}\n" } sort keys %VgTotals;
    _vg_write_file_atomic("$VgDir/summary", $s);
}

sub _vg_write_file_atomic ($$) {
    my ($path, $data) = @_;
    open my $out, '>', "$path.tmp" or return;
    print $out $data;
    close $out;
    rename "$path.tmp", $path;
}

# After a block (or after stopping the nginx of HUP mode, $final): checks
# the records valgrind wrote meanwhile.  A record with a frame of the module
# fails the block: an error (invalid read/write/free, uninitialised value,
# overlap, fatal signal ...), or a leak (definitely or indirectly lost)
# unless the block has --- no_check_leak.  Other records are notes.
sub _vg_after_block ($$$) {
    my ($block, $suffix, $final) = @_;
    return unless $UseValgrind && -d $VgRawDir;
    my $name = $block->name;
    my @recs;
    my %text_of;
    for my $c (_vg_collect($block, $final)) {
        my ($pid, $text, $born) = @$c;
        for my $r (_vg_parse($text)) {
            $r->{born} = $born;
            push @recs, $r;
        }
        $text_of{$pid} .= $text;
    }

    my $seq = sprintf "%03d", ++$VgBlockSeq;
    $VgTotals{blocks}++;
    my @counted = grep { $_->{kind} eq 'error' || $_->{kind} eq 'leak' } @recs;
    my $nmod = grep { $_->{module} } @counted;
    my $secs = defined $VgBlockStart ? sprintf(" (%.1fs)", time - $VgBlockStart) : '';
    my $head = "=== [$seq] $name$suffix: " . @counted . " record(s), "
             . "$nmod with a frame of the module$secs\n";
    my $body = join '', map { $text_of{$_} } sort { $a <=> $b } keys %text_of;
    _vg_append("$VgDir/valgrind.log", $head . $body);
    if (length $body) {
        (my $short = $block->name) =~ s/^.*?(TEST \d+).*/$1/s;
        $short =~ s/\W+/_/g;
        _vg_write_file_atomic("$VgDir/blocks/$seq-$short.log", $head . $body);
    }

    for my $r (@recs) {
        my $kind = $r->{kind};
        if ($kind eq 'warning') { $VgTotals{warnings}++; next }
        if ($kind eq 'ignored') { $VgTotals{ignored}++; next }
        $VgTotals{records}++;
        my $born = $r->{born};
        my $where = "process $r->{pid}";
        if (defined $born && $born != $block) {
            my ($t) = $born->name =~ /(TEST \d+)/;
            $where .= ", started during " . ($t // $born->name);
        }
        my $leaks_off = $kind eq 'leak'
            && (defined $block->no_check_leak
                || (defined $born && defined $born->no_check_leak));
        if ($r->{module}) {
            $VgTotals{module}++;
            if (!$leaks_off) {
                $VgTotals{failing}++;
                _vg_append("$VgDir/failing.log",
                           "=== $name$suffix\n$r->{text}$r->{suppression}\n");
                # (the record once, after the failure's own lines)
                _fail("$name - valgrind: $r->{header} (a frame of the module; "
                      . "$where)$suffix");
                Test::More::diag($r->{text});
                next;
            }
            Test::More::diag("$name - valgrind (note, --- no_check_leak): "
                             . "$r->{header} ($where)");
            next;
        }
        $VgTotals{other}++;
        my @lines = split /\n/, $r->{text};
        my $shown = join "\n", map { "    $_" }
                    @lines[0 .. ($#lines > 6 ? 6 : $#lines)];
        Test::More::diag("$name - valgrind (note: no frame of the module, "
                         . "not a failure): $r->{header} ($where)$suffix\n"
                         . $shown . ($#lines > 6 ? "\n    ..." : ''));
    }
    _vg_write_summary();
}

sub _vg_final_report () {
    return unless $UseValgrind;
    Test::More::diag(sprintf "valgrind: %d record(s) in %d block(s): %d with "
        . "a frame of the module (%d failing), %d without; log: %s",
        $VgTotals{records}, $VgTotals{blocks}, $VgTotals{module},
        $VgTotals{failing}, $VgTotals{other}, "$VgDir/valgrind.log")
        if $VgTotals{records} || $Verbose;
}

sub _wait_for_pid ($) {
    my $secs = shift;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $pid = _read_pid_file();
        return $pid if $pid && is_running($pid);
        sleep 0.01;
    }
    return undef;
}

# ---------------------------------------------------------------------------
# error log reading and checking
# ---------------------------------------------------------------------------

sub _read_log_from ($$) {
    my ($file, $pos) = @_;
    open my $in, '<', $file or return ([], $pos);
    seek $in, $pos, 0 if $pos > 0;
    my @lines = <$in>;
    my $new_pos = tell $in;
    close $in;
    return (\@lines, $new_pos);
}

# New lines of error.log since the previous call (all lines with
# check_accum_error_log()).
sub error_log_data () {
    # the log phase runs after nginx has closed the client connection
    sleep $TestNginxSleep * 3;
    my ($lines, $pos) = _read_log_from($ErrLogFile,
                                       $CheckAccumErrLog ? $ErrLogBase
                                                         : $ErrLogFilePos);
    $ErrLogFilePos = $pos unless $CheckAccumErrLog;
    return $lines;
}

sub access_log_data () {
    sleep $TestNginxSleep * 3;
    my ($lines) = _read_log_from($AccLogFile, $AccLogBase);
    return $lines;
}

sub _pattern_list ($) {
    my $pats = shift;
    if (!ref $pats) {
        chomp $pats;
        return [grep { length } split /\n+/, $pats];
    }
    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats] if ref $pats eq 'ARRAY';
    return [$pats];
}

sub _line_matches ($$) {
    my ($line, $pat) = @_;
    return ref $pat ? scalar($line =~ /$pat/) : index($line, $pat) >= 0;
}

sub _mentions {
    my ($val, $str) = @_;
    return 0 unless defined $val;
    if (ref $val eq 'ARRAY') {
        for (@$val) { return 1 if _mentions($_, $str) }
        return 0;
    }
    return index("$val", $str) >= 0;
}

# Positive ("must appear") and negative ("must not appear") pattern checks
# over a set of log lines.  One assertion per pattern.
sub _check_log_patterns ($$$$$$) {
    my ($name, $lines, $pats, $negative, $what, $suffix) = @_;
    my $file = $what =~ /access/ ? 'access.log' : 'error.log';
    for my $pat (@{ _pattern_list($pats) }) {
        next unless defined $pat;
        my $idx;
        for my $i (0 .. $#$lines) {
            if (_line_matches($lines->[$i], $pat)) { $idx = $i; last }
        }
        my $p = _fmt($pat);
        if (!$negative) {
            if (defined $idx) {
                Test::More::pass("$name - pattern \"$p\" matches a line in "
                                 . "$file$suffix");
            } else {
                Test::More::fail("$name - pattern \"$p\" should match a line "
                                 . "in $file$suffix");
            }
        } else {
            if (defined $idx) {
                my $ln = _fmt($lines->[$idx]);
                my $end = $idx + 10 > $#$lines ? $#$lines : $idx + 10;
                my $ctx = join '', @{$lines}[$idx + 1 .. $end];
                _fail("$name - pattern \"$p\" should not match any "
                      . "line in $file but matches line \"$ln\""
                      . "$suffix\n$ctx");
            } else {
                Test::More::pass("$name - pattern \"$p\" does not match a line "
                                 . "in $file$suffix");
            }
        }
    }
}

# Lines of level [alert], [crit] or [emerg] the block did not declare are
# a failure (the real module only warns about them).  Extra assertions are
# only emitted when something is wrong, so test counts are unaffected.
sub _check_severe_lines ($$$$) {
    my ($block, $lines, $extra_expected, $suffix) = @_;
    my $name = $block->name;
    my @declared = grep { defined }
                   ($block->error_log, $block->no_error_log,
                    $block->shutdown_error_log, $block->no_shutdown_error_log,
                    @$extra_expected);
    my @expected_pats = map { @{ _pattern_list($_) } }
                        grep { defined } ($block->error_log,
                                          $block->shutdown_error_log);
    for my $level (qw(alert crit emerg)) {
        next if $level eq 'emerg' && defined $block->must_die;
        next if $level eq 'emerg' && $UseHup && defined $block->reload_fails;
        next if grep { _mentions($_, "[$level") } @declared;
        my @bad;
        for my $line (@$lines) {
            next unless $line =~ /\[\Q$level\E\]/;
            next if grep { _line_matches($line, $_) } @expected_pats;
            push @bad, $line;
        }
        next unless @bad;
        my $n = @bad;
        my $shown = join '', map { "    $_" }
                    @bad[0 .. ($#bad > 4 ? 4 : $#bad)];
        _fail("$name - unexpected [$level] line(s) in error.log "
              . "($n)$suffix:\n$shown");
    }
    for my $line (@$lines) {
        if ($line =~ /\bAssertion .*?failed\b/) {
            chomp(my $l = $line);
            Test::More::fail("$name - $l");
        }
    }
}

sub check_error_log ($$$$;$) {
    my ($block, $dry_run, $repeated_req_idx, $need_array, $extra_lines) = @_;
    my $name = $block->name;
    my $lines;
    my $suffix = " (req $repeated_req_idx)";

    my $grep_pats = $block->grep_error_log;
    if (defined $grep_pats) {
        my $grep_pat = ref $grep_pats eq 'ARRAY'
                     ? $grep_pats->[$repeated_req_idx] : $grep_pats;
        my $expected = $block->grep_error_log_out;
        bail_out("$name - No --- grep_error_log_out defined but "
                 . "--- grep_error_log is defined") unless defined $expected;
        $expected = expand_env_in_text($expected, $name, $RandPorts)
            unless ref $expected;
        $expected = $expected->[$repeated_req_idx] if ref $expected eq 'ARRAY';
        _check($dry_run, "$name - grep_error_log", sub {
            $lines ||= [@{ error_log_data() }, @{ $extra_lines || [] }];
            my $got = '';
            for my $line (@$lines) {
                if (ref $grep_pat ? $line =~ /$grep_pat/ : $line =~ /\Q$grep_pat\E/) {
                    my $m = $&;
                    $got .= "$m\n" unless $m =~ /\n/;
                }
            }
            if (ref $expected eq 'Regexp') {
                Test::More::like($got, $expected,
                                 "$name - grep_error_log_out$suffix");
            } else {
                is_str($got, $expected, "$name - grep_error_log_out$suffix");
            }
        });
    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but "
                 . "--- grep_error_log_out is defined");
    }

    for my $spec ([error_log => 0], [no_error_log => 1]) {
        my ($sec, $neg) = @$spec;
        my $pats = $block->$sec;
        next unless defined $pats;
        if ($dry_run) {
            for (@{ _pattern_list($pats) }) {
                _check($dry_run, "$name - $sec", sub {});
            }
            next;
        }
        $lines ||= [@{ error_log_data() }, @{ $extra_lines || [] }];
        _check_log_patterns($name, $lines, $pats, $neg, $sec, $suffix);
    }

    return if $dry_run;
    $lines ||= [@{ error_log_data() }, @{ $extra_lines || [] }];
    _check_severe_lines($block, $lines, [], $suffix);
}

sub check_access_log ($$$) {
    my ($block, $dry_run, $repeated_req_idx) = @_;
    my $name = $block->name;
    my $lines;
    for my $spec ([access_log => 0], [no_access_log => 1]) {
        my ($sec, $neg) = @$spec;
        my $pats = $block->$sec;
        next unless defined $pats;
        if ($dry_run) {
            _check($dry_run, "$name - $sec", sub {})
                for @{ _pattern_list($pats) };
            next;
        }
        $lines ||= access_log_data();
        _check_log_patterns($name, $lines, $pats, $neg, $sec,
                            " (req $repeated_req_idx)");
    }
}

# ---------------------------------------------------------------------------
# building requests
# ---------------------------------------------------------------------------

sub _more_headers ($$) {
    my ($text, $name) = @_;
    my $out = '';
    my $chunked;
    for my $h (split /\n+/, $text // '') {
        next if $h =~ /^\s*#/;
        next unless $h =~ /\S/;
        my ($k, $v) = split /:\s*/, $h, 2;
        $v //= '';
        $chunked = 1 if lc($k) eq 'transfer-encoding' && $v eq 'chunked';
        $out .= "$k: $v\r\n";
    }
    return ($out, $chunked);
}

# Turns a "request" (list of packets, each a string or {value, delay_before})
# into the packets to send: the first line "METH [URI [VERSION]]" gets
# normalized and the Host/Connection/Content-Length/extra headers are
# inserted after it; a body has its surrounding whitespace trimmed.
# Packet boundaries of the original text are kept.
sub _build_request ($$$$$) {
    my ($name, $hdrs, $chunked, $conn, $packets) = @_;

    my @vals = map { ref $_ ? $_->{value} // '' : $_ // '' } @$packets;
    my $text = join '', @vals;

    my ($first) = $text =~ /^([^\n]*\n?)/;
    if (!defined $first || $first !~ /\S/) {
        bail_out("$name - Request line should be non-empty");
    }
    $first =~ /^(\s*)(\S+)( *)(?:(\S+)( *))?(?:(\S+)( *))?(\s*)$/
        or bail_out("$name - Request line is not valid. Should be "
                    . "'meth [url [version]]' but got \"$first\".");
    my @m = ($1, $2, $3, $4, $5, $6, $7, $8);
    my ($meth, $uri, $ver) = ($m[1], $m[3], $m[5]);

    my $body_start = length $first;
    my $body = substr $text, $body_start;

    my $len_hdr = '';
    my ($lead, $core, $trail) = ('', $body, '');
    if (!$chunked && length($body) && $hdrs !~ /(?:^|\n)Content-Length:/) {
        ($lead, $core, $trail) = $body =~ /^(\s*)(.*?)(\s*)$/s;
        $len_hdr = "Content-Length: " . length($core) . "\r\n";
    }

    my $head = '';
    $head .= "Host: $ServerName\r\n" if $hdrs !~ /(?:^|\n)Host:/i;
    $head .= "Connection: $conn\r\n" if $hdrs !~ /(?:^|\n)Connection/i;
    $head .= "$hdrs$len_hdr\r\n";

    # segments over the original text: [start, length, replacement]
    my @seg;
    my $pos = 0;
    my $add = sub {
        my ($len, $repl) = @_;
        push @seg, [$pos, $len, $repl];
        $pos += $len;
    };
    $add->(length $m[0], '');
    $add->(length $m[1], $meth);
    $add->(length $m[2], ' ');
    if (defined $uri) {
        $add->(length $uri, $uri);
        $add->(length($m[4] // ''), ' ');
    } else {
        $add->(0, '/ ');
    }
    if (defined $ver) {
        $add->(length $ver, $ver);
        $add->(length($m[6] // ''), '');
    } else {
        $add->(0, 'HTTP/1.1');
    }
    $add->(length $m[7], "\r\n$head");
    $add->(length $lead, '');
    $add->(length $core, $core);
    $add->(length $trail, '');

    # map the segments onto the original packets
    my @bounds;
    my $off = 0;
    for my $v (@vals) {
        push @bounds, [$off, $off + length $v];
        $off += length $v;
    }
    my @out = ('') x @vals;
    my $packet_of = sub {
        my $p = shift;       # index of a character in the original text
        for my $i (0 .. $#bounds) {
            return $i if $p >= $bounds[$i][0] && $p < $bounds[$i][1];
        }
        return $#bounds;
    };
    for my $s (@seg) {
        my ($start, $len, $repl) = @$s;
        next if $repl eq '';
        if ($len > 0 && $len == length $repl) {
            # same length: keep the split points
            for my $k (0 .. $len - 1) {
                $out[$packet_of->($start + $k)] .= substr($repl, $k, 1);
            }
        } elsif ($len > 0) {
            $out[$packet_of->($start + $len - 1)] .= $repl;
        } else {
            $out[$start > 0 ? $packet_of->($start - 1) : 0] .= $repl;
        }
    }

    my @res;
    for my $i (0 .. $#$packets) {
        my $p = $packets->[$i];
        if (ref $p) {
            push @res, { %$p, value => $out[$i] };
        } else {
            push @res, { value => $out[$i] };
        }
    }
    return \@res;
}

sub _hdr_for ($$$) {
    my ($more_headers, $i, $name) = @_;
    if (ref $more_headers eq 'ARRAY') {
        my $h = $more_headers->[$i];
        bail_out("$name - --- more_headers lacks data for request #$i")
            unless defined $h;
        return _more_headers($h, $name);
    }
    return _more_headers($more_headers, $name);
}

sub _expand_request ($$) {
    my ($req, $name) = @_;
    return $req unless defined $req && !ref $req && $req =~ /\$TEST_NGINX_/;
    if (!$RequestExpandNoted++) {
        Test::More::diag("note: \$TEST_NGINX_* variables are expanded in "
            . "--- request here; the real Test::Nginx only expands them in "
            . "--- pipelined_requests");
    }
    return expand_env_in_text($req, $name, $RandPorts);
}

# Returns a list of requests; each one is a list of packets
# ({value => ..., delay_before => ...}) sent on its own connection.
sub get_requests ($) {
    my $block = shift;
    my $name = $block->name;
    my @reqs;

    if (defined $block->raw_request) {
        my $raw = $block->raw_request;
        if (ref $raw eq 'ARRAY') {
            push @reqs, [map { ref $_ ? {%$_} : { value => $_ } } @$raw];
        } else {
            push @reqs, [{ value => $raw }];
        }
        return \@reqs;
    }

    my $more_headers = $block->more_headers // '';

    if (defined $block->pipelined_requests) {
        my $list = $block->pipelined_requests;
        bail_out("$name - invalid entries in --- pipelined_requests")
            unless ref $list eq 'ARRAY';
        my $all = '';
        for my $i (0 .. $#$list) {
            my $r = expand_env_in_text($list->[$i], $name, $RandPorts);
            my ($hdr, $chunked) = _hdr_for($more_headers, $i, $name);
            my $conn = $i == $#$list ? 'close' : 'keep-alive';
            my $built = _build_request($name, $hdr, $chunked, $conn, [$r]);
            $all .= $built->[0]{value};
        }
        push @reqs, [{ value => $all }];
        return \@reqs;
    }

    my $request = $block->request;
    if (defined $block->request_eval) {
        $request = eval $block->request_eval;
        warn $@ if $@;
    }
    bail_out("$name - no --- request (or raw_request/pipelined_requests) "
             . "section") unless defined $request;

    if (!ref $request) {
        1 while $request =~ s/^\s*#[^\n]+\s+|^\s+//s;
        $request = _expand_request($request, $name);
        my ($hdr, $chunked) = _hdr_for($more_headers, 0, $name);
        push @reqs, _build_request($name, $hdr, $chunked, 'close', [$request]);
        return \@reqs;
    }

    bail_out("$name - invalid --- request: MUST be a string or an array "
             . "of requests") unless ref $request eq 'ARRAY';

    for my $i (0 .. $#$request) {
        my $one = $request->[$i];
        my ($hdr, $chunked) = _hdr_for($more_headers, $i, $name);
        if (!ref $one) {
            $one = _expand_request($one, $name);
            push @reqs, _build_request($name, $hdr, $chunked, 'close', [$one]);
        } elsif (ref $one eq 'ARRAY') {
            my @packets;
            for my $p (@$one) {
                if (!ref $p) {
                    push @packets, _expand_request($p, $name);
                } elsif (ref $p eq 'HASH') {
                    push @packets, { %$p,
                                     value => _expand_request($p->{value}, $name) };
                } else {
                    bail_out("$name - Invalid syntax. $p should be a string "
                             . "or hash with value.");
                }
            }
            push @reqs, _build_request($name, $hdr, $chunked, 'close', \@packets);
        } else {
            bail_out("$name - Invalid syntax. $one should be a string or an "
                     . "array of packets.");
        }
    }
    return \@reqs;
}

# ---------------------------------------------------------------------------
# sending requests and parsing responses
# ---------------------------------------------------------------------------

sub _connect ($$) {
    my ($block, $timeout) = @_;
    my $name = $block->name;
    my $addr = $block->server_addr_for_client // $ServerAddr;
    my $err;
    my $deadline = time + _scaled(5);
    my $wait = 0.01;
    while (1) {
        my $sock = IO::Socket::INET->new(
            PeerAddr => $addr,
            PeerPort => $ServerPortForClient,
            Proto    => 'tcp',
            Timeout  => $timeout,
        );
        return $sock if $sock;
        $err = "$!";
        last if time > $deadline;
        last if defined $NginxPid && !is_running($NginxPid);
        sleep $wait;
        $wait *= 1.5 if $wait < 0.25;
    }
    my $gone = defined $NginxPid && !is_running($NginxPid)
             ? " (nginx is gone)" : '';
    Test::More::fail("$name - Can't connect to $addr:$ServerPortForClient: "
                     . "$err$gone (aborted)");
    return undef;
}

sub send_request ($$$) {
    my ($packets, $block, $timeout) = @_;
    my $name = $block->name;

    my $all = join '', map { $_->{value} } @$packets;
    my $head_req = $all =~ /^\s*HEAD\s+/ ? 1 : 0;

    my $sock = _connect($block, $timeout) or return (undef, $head_req);
    $sock->blocking(0);
    local $SIG{PIPE} = 'IGNORE';

    my @queue = @$packets;
    my $cur = shift @queue;
    my $buf = $cur->{value};
    my $off = 0;
    my $middle_delay = parse_time($block->raw_request_middle_delay);
    my ($writing, $reading) = (1, 1);
    my $resp = '';

    while ($reading) {
        my $rsel = IO::Select->new($sock);
        my $wsel = $writing ? IO::Select->new($sock) : undef;
        $! = 0;
        my ($r, $w) = IO::Select->select($rsel, $wsel, undef, $timeout);
        if (!$r && !$w) {
            next if $!{EINTR};
            if (!defined $block->abort) {
                Test::More::fail("ERROR: client socket timed out - $name");
            }
            last;
        }

        if ($r && @$r) {
            my $n = sysread($sock, my $chunk, 65536);
            if (!defined $n) {
                next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
                warn "WARNING: $name - HTTP response read failure: $!\n";
                last;
            }
            last if $n == 0;
            $resp .= $chunk;
        }

        if ($writing && $w && @$w) {
            while (1) {
                my $rest = length($buf) - $off;
                if ($rest > 0) {
                    my $n = syswrite($sock, $buf, $rest, $off);
                    if (!defined $n) {
                        last if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
                        # the server may have answered and closed already
                        warn "WARNING: $name - write failed: $!\n"
                            unless length $resp;
                        $writing = 0;
                        last;
                    }
                    $off += $n;
                    next;
                }
                my $next = shift @queue;
                if (!$next) {
                    $writing = 0;
                    if (defined(my $sd = $block->shutdown)) {
                        $sd = 1 if $sd !~ /\S/;
                        shutdown($sock, $sd);
                    }
                    last;
                }
                my $delay = defined $next->{delay_before}
                          ? $next->{delay_before} : $middle_delay;
                sleep $delay if $delay;
                ($buf, $off) = ($next->{value}, 0);
            }
        }
    }
    close $sock;
    return ($resp, $head_req);
}

sub _decode_chunked ($$$) {
    my ($name, $raw, $trailers) = @_;
    my $pos = 0;
    my $decoded = '';
    my $len = length $raw;
    while (1) {
        my $eol = index($raw, "\r\n", $pos);
        if ($eol < 0) {
            my $rest = substr($raw, $pos);
            return (undef, undef, $rest eq ''
                ? "no last chunk found"
                : "invalid chunked body received: " . _fmt($rest));
        }
        my $line = substr($raw, $pos, $eol - $pos);
        if ($line !~ /^[ \t]*([0-9A-Fa-f]+)[ \t]*(?:;.*)?$/) {
            return (undef, undef, "invalid chunked body received: "
                                  . _fmt(substr($raw, $pos, 80)));
        }
        my $size = hex $1;
        $pos = $eol + 2;
        if ($size == 0) {
            # optional trailer fields, then an empty line
            while (1) {
                my $e = index($raw, "\r\n", $pos);
                return (undef, undef,
                        "invalid chunked data received (expected CRLF).")
                    if $e < 0;
                my $l = substr($raw, $pos, $e - $pos);
                $pos = $e + 2;
                last if $l eq '';
                push @$trailers, $l;
            }
            my $left = $pos < $len ? substr($raw, $pos) : undef;
            return ($decoded, $left, undef);
        }
        if ($len - $pos < $size) {
            return (undef, undef, "invalid chunked data received "
                                  . "(not enough octets for the data section)");
        }
        $decoded .= substr($raw, $pos, $size);
        $pos += $size;
        if (substr($raw, $pos, 2) ne "\r\n") {
            return (undef, undef,
                    "invalid chunked data received (expected CRLF).");
        }
        $pos += 2;
    }
}

# Returns (HTTP::Response or undef, raw header text, leftover bytes).
sub parse_response ($$$) {
    my ($name, $raw, $head_req) = @_;
    my $raw_headers = $raw =~ /^(.*?\r\n)\r\n/s ? $1 : '';
    my $res = HTTP::Response->parse($raw);
    my $code = $res->code;
    if (defined $code && $code !~ /^\d+$/) {
        $res->code(undef);
        $code = undef;
    }
    return ($res, $raw_headers, undef) unless defined $code;

    my $content = $res->content // '';
    if ($head_req || $code == 304 || $code == 204 || $code == 101
        || $code =~ /^1/)
    {
        $res->content('');
        return ($res, $raw_headers, length $content ? $content : undef);
    }

    my $te  = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    if (defined $te && $te =~ /\bchunked\b/i) {
        my @trailers;
        my ($decoded, $left, $err) = _decode_chunked($name, $content,
                                                     \@trailers);
        if (defined $err) {
            Test::More::fail("$name - $err");
            return (undef, $raw_headers, undef);
        }
        $res->content($decoded);
        return ($res, $raw_headers, $left);
    }
    if (defined $len && $len =~ /^\s*(\d+)\s*$/) {
        $len = $1;
        if (length($content) < $len) {
            warn "WARNING: $name - response body truncated: $len expected, "
                 . "but got " . length($content) . "\n";
        } elsif (length($content) > $len) {
            $res->content(substr($content, 0, $len));
            return ($res, $raw_headers, substr($content, $len));
        }
    }
    return ($res, $raw_headers, undef);
}

# ---------------------------------------------------------------------------
# response checks (same assertions and names as the real module)
# ---------------------------------------------------------------------------

sub _indexed ($$$$) {
    my ($name, $value, $idx, $need_array) = @_;
    if ($need_array) {
        return $value->[$idx] if ref $value eq 'ARRAY';
        bail_out("$name - You asked for many requests, the expected results "
                 . "should be arrays as well.");
    }
    return $value->[0] if ref $value eq 'ARRAY';
    return $value;
}

sub _header_spec ($) {
    my $s = shift;
    my (@order, %h);
    for my $line (split /\n/, $s // '') {
        $line =~ s/^\s+|\s+$//g;
        next unless length $line;
        my ($key, $val);
        if ($line =~ s/^!\s*//) {
            ($key, $val) = ($line, undef);
        } else {
            ($key, $val) = split /\s*:\s*/, $line, 2;
            $val //= '';
        }
        push @order, $key unless exists $h{$key};
        $h{$key} = $val;
    }
    return map { [$_, $h{$_}] } @order;
}

sub check_error_code ($$$$$) {
    my ($block, $res, $dry_run, $idx, $need_array) = @_;
    my $name = $block->name;
    _check($dry_run, "$name - status code", sub {
        my $got = ($res && $res->code) || '';
        if (defined $block->error_code_like) {
            my $pat = _indexed($name, $block->error_code_like, $idx, $need_array);
            Test::More::like($got, qr/$pat/sm, "$name - status code ok");
        } elsif (defined $block->error_code) {
            my $exp = _indexed($name, $block->error_code, $idx, $need_array);
            $exp =~ s/^\s+|\s+$//g if defined $exp && !ref $exp;
            Test::More::is($got, $exp, "$name - status code ok");
        } else {
            Test::More::is($got, 200, "$name - status code ok");
        }
    });
}

sub check_raw_response_headers ($$$$$) {
    my ($block, $raw_headers, $dry_run, $idx, $need_array) = @_;
    my $name = $block->name;
    if (defined $block->raw_response_headers_like) {
        my $pat = _indexed($name, $block->raw_response_headers_like, $idx,
                           $need_array);
        _check($dry_run, "$name - raw_response_headers_like", sub {
            Test::More::like($raw_headers, qr/$pat/s,
                             "$name - raw resp headers like");
        });
    }
    if (defined $block->raw_response_headers_unlike) {
        my $pat = _indexed($name, $block->raw_response_headers_unlike, $idx,
                           $need_array);
        _check($dry_run, "$name - raw_response_headers_unlike", sub {
            Test::More::unlike($raw_headers, qr/$pat/s,
                               "$name - raw resp headers unlike");
        });
    }
}

sub check_response_headers ($$$$$$) {
    my ($block, $res, $raw_headers, $dry_run, $idx, $need_array) = @_;
    my $name = $block->name;
    if (defined $block->response_headers) {
        my $spec = _indexed($name, $block->response_headers, $idx, $need_array);
        for my $kv (_header_spec($spec)) {
            my ($key, $val) = @$kv;
            if (!defined $val) {
                _check($dry_run, "$name - response_headers", sub {
                    Test::More::unlike($raw_headers // '',
                                       qr/^\s*\Q$key\E\s*:/msi,
                                       "$name - header $key not present in "
                                       . "the raw headers");
                });
                next;
            }
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            $val =~ s/\$ServerPort\b/$ServerPort/g;
            _check($dry_run, "$name - response_headers", sub {
                my $got = $res ? $res->header($key) : undef;
                Test::More::is($got // '', $val, "$name - header $key ok");
            });
        }
    } elsif (defined $block->response_headers_like) {
        my $spec = _indexed($name, $block->response_headers_like, $idx,
                            $need_array);
        for my $kv (_header_spec($spec)) {
            my ($key, $val) = @$kv;
            $val //= '';
            _check($dry_run, "$name - response_headers_like", sub {
                my $got = $res ? $res->header($key) : undef;
                Test::More::like($got // '', qr/^$val$/,
                                 "$name - header $key like ok");
            });
        }
    }
}

sub _run_body_filter ($$$) {
    my ($block, $filter, $content) = @_;
    my $name = $block->name;
    return $filter->($content) if ref $filter eq 'CODE';
    bail_out("$name - --- response_body_filters only supports subroutine "
             . "references and names") if ref $filter;
    my %f = (
        md5_hex  => sub { Digest::MD5::md5_hex($_[0]) },
        sha1_hex => sub { Digest::SHA::sha1_hex($_[0]) },
        uc       => sub { uc $_[0] },
        lc       => sub { lc $_[0] },
        ucfirst  => sub { ucfirst $_[0] },
        lcfirst  => sub { lcfirst $_[0] },
        length   => sub { length $_[0] },
    );
    my $code = $f{$filter}
        or bail_out("$name - unknown filter, \"$filter\", specified in the "
                    . "--- response_body_filters section");
    return $code->($content);
}

sub transform_response_body ($$$) {
    my ($block, $res, $idx) = @_;
    return unless $res && defined $res->content;
    my $filters = $block->response_body_filters;
    return unless defined $filters;
    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//g;
        $filters = [split /\s+/, $filters];
    } elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }
    if (ref $filters->[0] eq 'ARRAY') {
        $filters = $filters->[$idx];
        bail_out($block->name . " - --- response_body_filters has no entry "
                 . "for request $idx") unless defined $filters;
    }
    my $c = $res->content;
    $c = _run_body_filter($block, $_, $c)
        for (ref $filters eq 'ARRAY' ? @$filters : ($filters));
    $res->content($c);
}

sub check_response_body ($$$$$$) {
    my ($block, $res, $dry_run, $idx, $rep_idx, $need_array) = @_;
    my $name = $block->name;
    my $content = $res ? $res->content : undef;

    if (defined $block->write_resp_body_file && $res) {
        _write_file($block->write_resp_body_file, $content // '');
    }

    if (defined $block->response_body || defined $block->response_body_eval) {
        if (defined $content && defined $block->response_body_json_sort) {
            my $js = JSON::PP->new->canonical(1);
            my $obj = eval { $js->loose(1)->decode($content) };
            $content = $js->encode($obj) . "\n" if !$@ && defined $obj;
        }
        my $expected;
        if (defined $block->response_body_eval) {
            $expected = eval _indexed($name, $block->response_body_eval, $idx,
                                      $need_array);
            warn $@ if $@;
        } else {
            $expected = _indexed($name, $block->response_body, $idx,
                                 $need_array);
        }
        if (defined $block->charset && defined $expected && !ref $expected) {
            require Encode;
            Encode::from_to($expected, 'UTF-8', $block->charset);
        }
        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected = expand_env_in_text($expected, $name, $RandPorts);
        }
        my $desc = "$name - response_body - response is expected "
                 . "(repeated req $rep_idx, req $idx)";
        _check($dry_run, "$name - response_body", sub {
            if (ref $expected) {
                Test::More::like($content, $expected,
                                 "$name - response_body - like (repeated req "
                                 . "$rep_idx, req $idx)");
            } else {
                is_str($content, $expected, $desc);
            }
        });
    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $sec = "response_body_$type";
        my $pat = _indexed($name, $block->$sec, $idx, $need_array);
        if (!ref $pat) {
            $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            $pat =~ s/\$ServerPort\b/$ServerPort/g;
        }
        my $summary = $content // '';
        $summary =~ s/^\s+|\s+$//g;
        $summary =~ s/\s+/ /g;
        _check($dry_run, "$name - $sec", sub {
            my $desc = "$name - $sec - response is expected ($summary)";
            if ($type eq 'like') {
                Test::More::like($content, qr/$pat/s, $desc);
            } else {
                Test::More::unlike($content, qr/$pat/s, $desc);
            }
        });
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $content // '', $idx, $rep_idx, $dry_run);
    }
}

# ---------------------------------------------------------------------------
# the request phase of one repetition
# ---------------------------------------------------------------------------

sub run_test_helper ($$$) {
    my ($block, $dry_run, $rep_idx) = @_;
    my $name = $block->name;

    my $reqs = get_requests($block);
    bail_out("$name - request empty") unless @$reqs;

    my $timeout = _scaled(parse_time($block->timeout) // $Timeout);
    my $pipelined = defined $block->pipelined_requests
                  ? scalar @{ $block->pipelined_requests } : 0;
    my $need_array = $pipelined ? 1 : @$reqs > 1;
    my $total = $pipelined ? $pipelined : scalar @$reqs;
    my $req_idx = 0;

    for my $one (@$reqs) {
        my ($raw, $head_req);
        if ($dry_run) {
            $raw = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        } else {
            ($raw, $head_req) = send_request($one, $block, $timeout);
        }
        $raw //= '';

        my $n = $pipelined || 1;
        for my $k (1 .. $n) {
            if (!defined $block->ignore_response) {
                my ($res, $raw_headers, $left);
                if (defined $block->http09) {
                    $res = HTTP::Response->new(200, 'OK', [], $raw);
                    $raw_headers = '';
                } else {
                    ($res, $raw_headers, $left) =
                        parse_response($name, $raw, $head_req);
                }
                if ($k < $n) {
                    $raw = $left // '';
                } elsif (defined $left && length $left) {
                    warn "WARNING: $name - unexpected extra bytes after the "
                         . "response: \"" . _fmt($left) . "\"\n";
                }

                check_error_code($block, $res, $dry_run, $req_idx,
                                 $need_array);
                check_raw_response_headers($block, $raw_headers, $dry_run,
                                           $req_idx, $need_array);
                check_response_headers($block, $res, $raw_headers, $dry_run,
                                       $req_idx, $need_array);
                transform_response_body($block, $res, $req_idx);
                check_response_body($block, $res, $dry_run, $req_idx,
                                    $rep_idx, $need_array);
            }

            if ($req_idx < $total - 1) {
                sleep parse_time($block->wait) if $block->wait;
                check_error_log($block, $dry_run, $rep_idx, $need_array);
                check_access_log($block, $dry_run, $rep_idx)
                    unless defined $block->ignore_response;
            }
            $req_idx++;
        }
    }

    sleep parse_time($block->wait) if $block->wait;
    check_error_log($block, $dry_run, $rep_idx, $need_array);
    check_access_log($block, $dry_run, $rep_idx)
        unless defined $block->ignore_response;
}

# ---------------------------------------------------------------------------
# embedded TCP server (--- tcp_listen & co.)
# ---------------------------------------------------------------------------

sub start_tcp_server ($) {
    my $block = shift;
    my $name = $block->name;
    my $target = expand_env_in_text($block->tcp_listen, $name, $RandPorts);
    $target =~ s/^\s+|\s+$//g;

    my $reply = $block->tcp_reply;
    if (!defined $reply && !defined $block->tcp_shutdown) {
        bail_out("$name - no --- tcp_reply specified but --- tcp_listen is "
                 . "specified");
    }

    my $req_len = $block->tcp_query_len;
    my $query_file;
    if (defined $block->tcp_query || defined $req_len) {
        $req_len //= length $block->tcp_query;
        (undef, $query_file) = File::Temp::tempfile('tcp-query-XXXXXX',
                                                    TMPDIR => 1, UNLINK => 1);
    }

    my ($sock, $err);
    for my $try (1 .. 30) {
        if ($target =~ /^\d+$/) {
            $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                          LocalPort => $target,
                                          Proto => 'tcp', ReuseAddr => 1,
                                          Listen => 5);
        } elsif ($target =~ /\S+\.sock$/) {
            unlink $target if -e $target;
            $sock = IO::Socket::UNIX->new(Local => $target,
                                          Type => SOCK_STREAM, Listen => 5);
        } else {
            bail_out("$name - bad tcp_listen target: $target");
        }
        last if $sock;
        $err = "$!";
        last unless $err =~ /in use/i;
        sleep 0.2;
    }
    bail_out("$name - failed to create the tcp listening socket "
             . "($target): $err") unless $sock;

    my $pid = fork;
    bail_out("$name - fork() failed: $!") unless defined $pid;

    if ($pid == 0) {
        $InSubprocess = 1;
        close $WatchdogFh if $WatchdogFh;
        _prctl(1, 9);   # PR_SET_PDEATHSIG: SIGKILL when the test process dies
        Test::More->builder->no_ending(1);
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP QUIT);
        $SIG{PIPE} = 'IGNORE';
        my $client;
        until ($client = $sock->accept) {
            sleep 0.01;
        }
        my ($no_read, $no_write);
        if (defined(my $sd = $block->tcp_shutdown)) {
            sleep parse_time($block->tcp_shutdown_delay)
                if $block->tcp_shutdown_delay;
            $client->shutdown($sd);
            if ($sd == 0 || $sd == 2) { $no_read = 1 } else { $no_write = 1 }
        }
        my $buf = '';
        if (!$no_read) {
            my $auto = $block->tcp_query_auto_timeout;
            my $to = defined $auto && $auto =~ /\S/ ? $auto + 0 : 0.1;
            my $sel = IO::Select->new($client);
            while (1) {
                last if defined $auto && !$sel->can_read($to);
                my $n = sysread($client, my $b, 4096);
                last if !defined $n || $n == 0;
                $buf .= $b;
                if ($query_file) {
                    open my $o, '>', "$query_file.tmp" or last;
                    binmode $o;
                    print $o $buf;
                    close $o;
                    rename "$query_file.tmp", $query_file;
                }
                last if !defined $auto
                        && (!$req_len || length($buf) >= $req_len);
            }
        }
        if (my $d = parse_time($block->tcp_reply_delay)) {
            sleep $d;
        }
        if (!$no_write && defined $reply) {
            $reply = $reply->($buf) if ref $reply eq 'CODE';
            my @parts = ref $reply eq 'ARRAY' ? @$reply : ($reply);
            for my $part (@parts) {
                my $data = $part;
                my $off = 0;
                while ($off < length $data) {
                    my $n = syswrite($client, $data, length($data) - $off,
                                     $off);
                    last unless defined $n;
                    $off += $n;
                }
            }
        }
        if (defined $block->tcp_no_close) {
            sleep 1 while 1;
        }
        close $client;
        close $sock;
        POSIX::_exit(0);
    }

    $TcpServerPid = $pid;
    return ($sock, $query_file);
}

sub run_tcp_server_tests ($$$) {
    my ($block, $sock, $query_file) = @_;
    return unless defined $sock;
    my $name = $block->name;
    my $buf = ($query_file && _slurp($query_file)) // '';
    if (defined $block->tcp_query) {
        is_str($buf, $block->tcp_query, "$name - tcp_query ok");
    }
    if (defined $block->tcp_query_len) {
        Test::More::is(length($buf), $block->tcp_query_len,
                       "$name - TCP query length ok");
    }
}

# ---------------------------------------------------------------------------
# skip/todo specs (skip_nginx, skip_nginx2, skip_eval, todo)
# ---------------------------------------------------------------------------

sub _ver_cmp_true ($$) {
    my ($op, $ver) = @_;
    return 0 unless defined $NginxVersion;
    return $op eq '<'  ? $NginxVersion <  $ver
         : $op eq '<=' ? $NginxVersion <= $ver
         : $op eq '>'  ? $NginxVersion >  $ver
         :               $NginxVersion >= $ver;
}

sub _skip_info ($) {
    my $block = shift;
    my $name = $block->name;
    my ($n, $skip, $reason);

    if (defined(my $spec = $block->skip_nginx)) {
        $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*?))?\s*$/s
            or bail_out("$name - Invalid --- skip_nginx spec: $spec");
        $n = $1;
        $reason = $6 || "nginx version $2 $3.$4.$5";
        $skip = _ver_cmp_true($2, canon_version($3, $4, $5));
    } elsif (defined($spec = $block->skip_nginx2)) {
        $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)\s*(or|and)\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*?))?\s*$/s
            or bail_out("$name - Invalid --- skip_nginx2 spec: $spec");
        $n = $1;
        my $a = _ver_cmp_true($2, canon_version($3, $4, $5));
        my $b = _ver_cmp_true($7, canon_version($8, $9, $10));
        $skip = $6 eq 'or' ? ($a || $b) : ($a && $b);
        $reason = $11 || 'nginx version';
    }
    if (defined(my $spec = $block->skip_openssl)) {
        $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)([a-z])?(?:\s*:\s*(.*?))?\s*$/s
            or bail_out("$name - Invalid --- skip_openssl spec: $spec");
        $n = $1;
        my $v = canon_version($3, $4, $5)
              . (defined $6 ? sprintf("%03d", ord($6) - ord('a')) : '');
        if (!defined $OpenSSLVersion) {
            ($skip, $reason) = (1, $7 || 'Not built with OpenSSL');
        } else {
            my $o = $OpenSSLVersion;
            $skip = $2 eq '<' ? $o < $v : $2 eq '<=' ? $o <= $v
                  : $2 eq '>' ? $o > $v : $o >= $v;
            $reason = $7 || "OpenSSL version $2 $3.$4.$5" . ($6 // '');
        }
    }
    if (defined(my $spec = $block->skip_eval)) {
        if ($spec =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            $n = $1;
            my $code = $2;
            $skip = eval "package main; $code";
            bail_out("$name - skip_eval - failed to eval the Perl code "
                     . "\"$code\": $@") if $@;
            $reason = 'skip_eval';
        }
    }
    return ($n, $skip, $reason // 'various reasons');
}

# ---------------------------------------------------------------------------
# running one block
# ---------------------------------------------------------------------------

sub _unsupported ($) {
    my $block = shift;
    my @bad;
    for my $sec (qw(http2 http3 udp_listen udp_reply udp_query)) {
        push @bad, $sec if defined $block->$sec;
    }
    return @bad;
}

sub _startup_report ($) {
    my $r = shift;
    my $msg = '';
    $msg .= "stderr:\n$r->{stderr}" if length $r->{stderr};
    my ($lines) = _read_log_from($ErrLogFile, 0);
    my @tail = grep { /\[(?:emerg|alert|crit|error)\]/ } @$lines;
    @tail = @tail[-10 .. -1] if @tail > 10;
    $msg .= "error.log:\n" . join('', @tail) if @tail;
    return $msg;
}

# ---------------------------------------------------------------------------
# HUP mode (use_hup() / TEST_NGINX_USE_HUP): one nginx for consecutive
# blocks, reloaded with SIGHUP, so shared memory zones survive
# ---------------------------------------------------------------------------

sub _file_size ($) {
    my $size = -s $_[0];
    return $size || 0;
}

# Workers of a master that have finished their initialization (nginx
# retitles a worker once its modules' init_process handlers have run).
sub _worker_pids ($) {
    my $master = shift;
    # under valgrind, /proc/PID/cmdline keeps valgrind's command line (the
    # retitling is not visible): every running child counts
    return grep { is_running($_) } _children_of($master) if $UseValgrind;
    return grep {
        my $cmd = _slurp("/proc/$_/cmdline") // '';
        $cmd =~ /worker process/ && $cmd !~ /shutting down/ && is_running($_);
    } _children_of($master);
}

# Sends SIGHUP to the running master and waits until the reload has taken
# effect: as many new workers as configured are up and every process of
# the old generation (workers, cache helpers) has exited, so that no old
# worker accepts a connection of the block.  Returns
#   ('ok'),
#   ('failed', [lines]) when nginx rejected the new configuration ([emerg]
#                       lines and no new workers: the old ones keep serving),
#   ('error', message)  when nginx died or did not reload in time.
sub _hup_reload ($) {
    my $name = shift;
    my $master = $NginxPid;
    my %old = map { ($_ => 1) } _children_of($master);
    my $pos = _file_size($ErrLogFile);
    my $want = $Workers =~ /^\d+$/ && $Workers > 0 ? $Workers : 1;
    my $limit = _scaled($Timeout > 10 ? $Timeout : 10);

    _log("sending SIGHUP to the nginx master (pid $master)");
    kill('HUP', $master)
        or return ('error', "cannot send SIGHUP to nginx (pid $master): $!");

    my $t0 = time;
    my $deadline = $t0 + $limit;
    my $emerg_since;
    while (1) {
        return ('error', "nginx (pid $master) exited while reloading its "
                         . "configuration (SIGHUP)")
            unless is_running($master);
        my @new = grep { !$old{$_} } _worker_pids($master);
        last if @new >= $want;
        my ($lines) = _read_log_from($ErrLogFile, $pos);
        my @emerg = grep { /\[emerg\]/ } @$lines;
        if (@emerg) {
            # a rejected configuration logs [emerg] and starts no worker;
            # give a (rare) [emerg] of a successful reload a moment
            $emerg_since //= time;
            return ('failed', \@emerg) if time - $emerg_since > 0.5;
        }
        if (time > $deadline) {
            return ('error', "nginx (pid $master) did not start new workers "
                             . "within ${limit}s after SIGHUP");
        }
        sleep 0.01;
    }

    my $t1 = time;
    _log(sprintf "new workers up after %.3fs", $t1 - $t0);
    $deadline = $t1 + $limit;
    while (grep { is_running($_) } keys %old) {
        if (time > $deadline) {
            my @left = grep { is_running($_) } sort keys %old;
            warn "WARNING: $name - process(es) @left of the previous nginx "
                 . "generation still running ${limit}s after the reload\n";
            last;
        }
        sleep 0.01;
    }
    _log(sprintf "old generation gone after %.3fs", time - $t1);
    return ('ok');
}

# HUP mode: brings the running nginx to this block's configuration (none:
# it keeps running as it is).  Returns false when the block cannot run.
sub _reload_for_block ($$) {
    my ($block, $config) = @_;
    my $name = $block->name;

    # this block's log lines start here
    $ErrLogBase = $ErrLogFilePos = _file_size($ErrLogFile);
    $AccLogBase = _file_size($AccLogFile);

    if (!defined $config) {
        write_user_files($block);
        return 1;
    }

    # fresh conf/ and html/; logs, the pid file and temp directories stay
    remove_tree($ConfDir, $HtmlDir, $CacheDir, glob("$ServRoot/*_cache"));
    make_path($ConfDir, $HtmlDir);
    _write_index_html();
    if (defined(my $code = $block->post_setup_server_root)) {
        eval "package main; $code";
        bail_out("$name - post_setup_server_root failed: $@") if $@;
    }
    write_user_files($block);
    my $conf_text = _main_conf_text($block, $config);
    _write_file($ConfFile, $conf_text);
    $PrevConfigFile = $conf_text;

    my ($st, $info) = _hup_reload($name);
    if ($st eq 'ok') {
        _fail("$name - nginx reloaded the configuration, but --- reload_fails "
              . "says the reload must fail") if defined $block->reload_fails;
        sleep $TestNginxSleep;
        return 1;
    }
    if ($st eq 'failed') {
        # the previous configuration keeps serving
        return 1 if defined $block->reload_fails;
        my @tail = @$info > 10 ? @{$info}[-10 .. -1] : @$info;
        _fail("$name - nginx failed to reload the configuration (SIGHUP) "
              . "and keeps the previous one\nerror.log:\n" . join('', @tail));
        $HupBlock = $block;
        return 0;
    }
    _fail("$name - $info");
    undef $HupBlock;
    stop_nginx($name);
    return 0;
}

# HUP mode, end of a block: nginx keeps running for the next block.
sub _end_hup_block ($) {
    my $block = shift;
    my $name = $block->name;
    if (!is_running($NginxPid)) {
        Test::More::fail("$name - nginx (pid $NginxPid) exited before the "
                         . "end of the test block (crashed?)");
        undef $HupBlock;
        stop_nginx($name);
        return;
    }
    $HupBlock = $block;
    # (lines logged after the last check of the block)
    my ($lines) = _read_log_from($ErrLogFile, $ErrLogFilePos);
    _check_severe_lines($block, $lines, [], ' (after the requests)');
    # nginx does not shut down here: like the real module, skip the checks
    for my $sec (qw(shutdown_error_log no_shutdown_error_log)) {
        my $pats = $block->$sec;
        next unless defined $pats;
        _check('HUP reload mode', "$name - $sec", sub {})
            for @{ _pattern_list($pats) };
    }
}

# HUP mode: stops the nginx left running by the previous block(s) and
# checks what it logged while shutting down (for the last of them).
sub _stop_hup_nginx () {
    my $block = $HupBlock;
    undef $HupBlock;
    return unless defined $block && defined $NginxPid;
    my $pos = _file_size($ErrLogFile);
    $VgBlockStart = time;
    stop_nginx($block->name);
    my ($lines) = _read_log_from($ErrLogFile, $pos);
    _check_severe_lines($block, $lines, [], ' (at shutdown)');
    _vg_after_block($block, ' (at shutdown)', 1) if $UseValgrind;
}

# Starts nginx for a block (or, with --- must_die, checks that it fails to
# start).  Returns (false) when the block is over, else (1, dry-run reason).
sub _start_nginx_for_block ($$$) {
    my ($block, $config, $conf_text) = @_;
    my $name = $block->name;
    my $dry_run = 0;

    _kill_stale_nginx();
    setup_server_root();
    if (defined(my $code = $block->post_setup_server_root)) {
        eval "package main; $code";
        bail_out("$name - post_setup_server_root failed: $@") if $@;
    }
    write_user_files($block);
    $conf_text //= _main_conf_text($block, $config);
    # (the previous block's configuration may come from a --- must_die block,
    # which runs without valgrind)
    $conf_text =~ s/^daemon on;$/daemon off;/m if _valgrind_for($block);
    _write_file($ConfFile, $conf_text);
    $PrevConfigFile = $conf_text;
    ($ErrLogFilePos, $ErrLogBase, $AccLogBase) = (0, 0, 0);

    if (defined(my $must_die = $block->must_die)) {
        for my $i (0 .. $RepeatEach - 1) {
            my $r = _launch_nginx($block);
            if ($r->{exec_failed}) {
                Test::More::fail("$name - failed to execute the nginx command "
                                 . "line: $r->{stderr}");
            } elsif ($r->{core}) {
                Test::More::fail("$name - nginx core dumped");
            } elsif ($must_die =~ /^\s*(\d+)\s*$/) {
                Test::More::is($r->{exit_code}, $1,
                               "$name - die with the expected exit code");
            } else {
                Test::More::isnt($r->{status}, 0, "$name - die as expected");
            }
            my @stderr = map { "$_\n" } split /\n/, $r->{stderr};
            check_error_log($block, 0, $i, 0, \@stderr);
            if ($r->{status} == 0) {
                warn "WARNING: $name - nginx must die but it does not; "
                     . "stopping it\n";
                $NginxPid = _wait_for_pid(_scaled(5));
                stop_nginx($name);
            }
        }
        return (0);
    }

    my $r;
    for my $try (1 .. 5) {
        $r = _launch_nginx($block);
        last if $r->{status} == 0;
        last unless _startup_report($r) =~ /Address already in use/;
        sleep 0.2 * $try;
    }
    if ($r->{status} != 0) {
        my $report = _startup_report($r);
        if ($ENV{TEST_NGINX_IGNORE_MISSING_DIRECTIVES}
            && $report =~ /unknown directive "([^"]+)"/)
        {
            $dry_run = "the lack of directive $1";
        } else {
            my $how = $r->{exec_failed} ? 'could not be executed'
                    : $r->{signal} ? "was killed by signal $r->{signal}"
                    : "exited with code $r->{exit_code}";
            _fail("$name - nginx failed to start (it $how)\n" . $report);
            return (0);
        }
    } else {
        $NginxPid = _wait_for_pid(_scaled(5));
        if (!$NginxPid) {
            Test::More::fail("$name - nginx started but no running process "
                             . "found via $PidFile");
            stop_nginx($name);
            return (0);
        }
        warn "$name - nginx stderr: $r->{stderr}"
            if length $r->{stderr} && !defined $block->suppress_stderr;
        sleep $TestNginxSleep;
    }
    return (1, $dry_run);
}

sub run_test ($) {
    my $block = shift;
    return if defined $block->SKIP;
    $VgBlockStart = time;
    _run_block($block);
    if ($UseValgrind) {
        # in HUP mode nginx keeps running: what it logged so far
        my $running = defined $NginxPid && is_running($NginxPid);
        _vg_after_block($block, '', $running ? 0 : 1);
    }
}

sub _run_block ($) {
    my $block = shift;
    my $name = $block->name;

    if (my @bad = _unsupported($block)) {
        Test::More::fail("$name - section(s) not supported by the bundled "
                         . "Test::Nginx compat runner: "
                         . join(', ', map { "--- $_" } @bad));
        return;
    }

    local $LogLevel = $block->log_level if $block->log_level;
    $RandPorts = {};

    my ($tests_to_skip, $should_skip, $skip_reason) = _skip_info($block);
    my ($should_todo, $todo_reason);
    if (defined(my $todo = $block->todo)) {
        $todo =~ /^\s*(\d+)\s*:\s*(.*)/s
            or bail_out("$name - Invalid --- todo spec: $todo");
        ($should_todo, $tests_to_skip, $todo_reason) = (1, $1, $2);
    }

    if ($should_skip && defined $tests_to_skip) {
        for (1 .. $RepeatEach) {
            SKIP: { Test::More::skip("$name - $skip_reason", $tests_to_skip) }
        }
        return;
    }
    if ($should_todo) {
        for (1 .. $RepeatEach) {
            TODO: { Test::More::todo_skip("$name - $todo_reason",
                                          $tests_to_skip) }
        }
        return;
    }

    # HUP mode (as in the real module): a must_die block gets a fresh nginx;
    # otherwise the nginx of the previous block keeps running and is
    # reloaded with this block's configuration.
    local $UseHup = $UseHup;
    $UseHup = 0 if defined $block->must_die;
    my $hup = $UseHup && defined $NginxPid && is_running($NginxPid);
    _stop_hup_nginx() if !$hup && defined $HupBlock;

    # the configuration: a block without --- config keeps running the
    # previous block's nginx in the real module; we restart it with the
    # same configuration file (in HUP mode it just keeps running).
    my $config = $block->config;
    my $conf_text;
    if (defined $config) {
        $config = expand_env_in_text($config, $name, $RandPorts);
    } elsif ($hup) {
        # nothing to reload
    } elsif (defined $PrevConfigFile) {
        $conf_text = $PrevConfigFile;
    } else {
        bail_out("$name - No '--- config' section specified and could not "
                 . "get previous one.");
    }

    my $dry_run = 0;

    if ($hup) {
        return unless _reload_for_block($block, $config);
    } else {
        (my $ok, $dry_run) = _start_nginx_for_block($block, $config,
                                                    $conf_text);
        return unless $ok;
    }

    if (defined(my $init = $block->init)) {
        eval "package main; $init";
        bail_out("$name - init failed: $@") if $@;
    }

    $ErrLogFilePos = $ErrLogBase;
    for my $i (1 .. $RepeatEach) {
        my ($tcp_sock, $tcp_query_file);
        if (defined $block->tcp_listen && !$dry_run) {
            ($tcp_sock, $tcp_query_file) = start_tcp_server($block);
        }
        write_user_files($block) if $i > 1;

        run_test_helper($block, $dry_run, $i - 1);
        run_tcp_server_tests($block, $tcp_sock, $tcp_query_file);

        if (defined $tcp_sock) {
            stop_tcp_server();
            close $tcp_sock;
            unlink $tcp_query_file if $tcp_query_file;
        }
    }

    return if $dry_run;

    if ($UseHup) {
        _end_hup_block($block);
        return;
    }

    # stop nginx now, then look at what it logged while shutting down
    my $crashed = defined $NginxPid && !is_running($NginxPid);
    my $pid = $NginxPid;
    stop_nginx($name);
    if ($crashed) {
        Test::More::fail("$name - nginx (pid $pid) exited before the end "
                         . "of the test block (crashed?)");
    }
    my ($lines) = _read_log_from($ErrLogFile, $CheckAccumErrLog ? $ErrLogBase
                                               : $ErrLogFilePos);
    for my $spec ([shutdown_error_log => 0], [no_shutdown_error_log => 1]) {
        my ($sec, $neg) = @$spec;
        my $pats = $block->$sec;
        next unless defined $pats;
        _check_log_patterns($name, $lines, $pats, $neg, $sec, '');
    }
    _check_severe_lines($block, $lines, [], ' (at shutdown)');
}

sub run_tests () {
    _install_signal_handlers();
    _start_watchdog();
    _init_nginx_info();
    _vg_init();
    for my $v (@UNSUPPORTED_ENV) {
        Test::More::diag("$v is not supported by the bundled Test::Nginx "
                         . "compat runner; ignored") if $ENV{$v};
    }
    # (server_port() may have changed the port since the module was loaded)
    $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort unless $PortEnvFromUser;

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;

    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value('name', $0 . ' ' . $block->name);
        run_test($block);
        for my $hdl (@TestCleanupHandlers) {
            $hdl->($block);
        }
    }
    _stop_hup_nginx();
    cleanup();
    _vg_final_report();
}

1;
__END__

=encoding utf-8

=head1 NAME

Test::Nginx::Compat - engine of the project's bundled Test::Nginx-compatible
test runner

=head1 SYNOPSIS

    t/prove                       # runs t/*.t (prove -r t)
    t/prove t/001-directive.t -v  # arguments go to prove
    t/compat/selftest/run         # self-test of this runner

Test files are written for CPAN's L<Test::Nginx::Socket> and run unchanged
with it when it is installed: C<t/prove> only adds C<-I t/compat> (and so
this runner) when C<perl -MTest::Nginx::Socket -e1> cannot load the real
module.

=head1 SUPPORTED

=head2 Perl functions

C<repeat_each>, C<blocks> (Test::Base), C<plan> / C<'no_plan'>,
C<run_tests>, C<run_test>, C<no_shuffle>, C<no_long_string>,
C<log_level>, C<master_on>, C<master_off>, C<master_process_enabled>,
C<workers>, C<worker_connections>, C<no_root_location>, C<timeout>,
C<server_name>, C<server_addr>, C<server_port>, C<server_port_for_client>,
C<server_root>, C<html_dir>, C<config_preamble>, C<env_to_nginx>,
C<check_accum_error_log>, C<add_block_preprocessor>,
C<add_response_body_check> (called as
C<< $check->($block, $body, $req_idx, $repeated_req_idx, $dry_run) >>),
C<add_cleanup_handler>, C<add_test_cleanup_handler>, C<bail_out>,
C<is_str>, C<Test::Nginx::Socket::set_http_config_filter>, C<use_hup>
(see L</HUP MODE>).
Test::Base features: filters (C<eval>, C<chomp>, ...), C<--- ONLY>,
C<--- SKIP>, C<--- LAST>.

=head2 Environment

C<TEST_NGINX_BINARY> (default C<nginx> in C<PATH>),
C<TEST_NGINX_LOAD_MODULES> (C<load_module> lines at the top of nginx.conf),
C<TEST_NGINX_SERVER_PORT> / C<TEST_NGINX_PORT> / C<TEST_NGINX_CLIENT_PORT>,
C<TEST_NGINX_SERVROOT> (default F<t/servroot>), C<TEST_NGINX_RANDOMIZE>
(own port and F<t/servroot_PORT>, for C<prove -jN>), C<TEST_NGINX_LOG_LEVEL>,
C<TEST_NGINX_MASTER_PROCESS>, C<TEST_NGINX_NO_SHUFFLE>, C<TEST_NGINX_TIMEOUT>,
C<TEST_NGINX_SLEEP>, C<TEST_NGINX_WORKER_USER> (else C<user root;> when run
as root), C<TEST_NGINX_EVENT_TYPE>, C<TEST_NGINX_POSTPONE_OUTPUT>,
C<TEST_NGINX_LD_PRELOAD>, C<TEST_NGINX_FAST_SHUTDOWN>,
C<TEST_NGINX_CHECK_ACCUM_ERR_LOG>, C<TEST_NGINX_IGNORE_MISSING_DIRECTIVES>,
C<TEST_NGINX_VERBOSE>, C<TEST_NGINX_USE_HUP> (see L</HUP MODE>),
C<TEST_NGINX_USE_VALGRIND> and its companions (see L</VALGRIND MODE>).

Expanded in C<config>, C<http_config>, C<main_config>, C<post_main_config>,
C<user_files>, C<tcp_listen>, requests and expected bodies:
C<$TEST_NGINX_SERVER_PORT>, C<$TEST_NGINX_RAND_PORT_N> (distinct free ports
per block), C<$TEST_NGINX_SERVER_ROOT>, C<$TEST_NGINX_HTML_DIR> and any
other C<$TEST_NGINX_*> environment variable (an undefined one bails out).

=head2 Block sections

Configuration: C<config>, C<http_config>, C<main_config>,
C<post_main_config>, C<server_name>, C<log_level>, C<error_log_file>,
C<user_files>, C<init>, C<post_setup_server_root>, C<must_die> (with an
optional exit code), C<suppress_stderr>, C<reload_fails> (HUP mode).

Requests: C<request> (string, or eval'd array of requests, each a string or
an array of packets C<< {value => ..., delay_before => ...} >>),
C<pipelined_requests>, C<raw_request> (string or array of packets),
C<raw_request_middle_delay>, C<more_headers> (string or array),
C<timeout>, C<abort>, C<shutdown>, C<wait>, C<ignore_response>, C<http09>,
C<server_addr_for_client>.

Checks: C<error_code>, C<error_code_like>, C<response_body>,
C<response_body_eval>, C<response_body_like>, C<response_body_unlike>,
C<response_body_filters>, C<response_body_json_sort>, C<charset>,
C<response_headers> (C<!Name> = absent), C<response_headers_like>,
C<raw_response_headers_like>, C<raw_response_headers_unlike>,
C<error_log>, C<no_error_log>, C<grep_error_log>, C<grep_error_log_out>,
C<access_log>, C<no_access_log>, C<shutdown_error_log>,
C<no_shutdown_error_log>, C<write_resp_body_file>.

Mock TCP backend: C<tcp_listen> (port or F<*.sock>), C<tcp_reply>
(string, array of pieces, or code ref), C<tcp_reply_delay>, C<tcp_query>,
C<tcp_query_len>, C<tcp_query_auto_timeout>, C<tcp_shutdown>,
C<tcp_no_close>.

Skipping: C<skip_nginx>, C<skip_nginx2>, C<skip_openssl>, C<skip_eval>,
C<todo>.

C<no_check_leak>: see L</VALGRIND MODE>.

=head2 HUP MODE

With C<use_hup()> before C<run_tests()>, or C<TEST_NGINX_USE_HUP> set to a
true value, nginx runs with C<master_process on> (whatever C<master_off()>
says, as in the real module) and is not stopped at the end of a block:

=over

=item *

The first block (and a block after one whose nginx was stopped) starts
nginx as usual.

=item *

A later block with a C<--- config> gets a fresh F<conf/> and F<html/> (its
C<user_files>), its nginx.conf is written and the master receives SIGHUP.
The runner then waits until the reload has taken effect: as many new
workers as C<workers()> asks for have finished their initialization and
every process of the old generation has exited (so no old worker takes a
connection of the block).  Everything is bounded (C<timeout()>, at least
10s).  So the master, its pid and the shared memory zones that a reload
keeps (same name, size and module) survive from one block to the next.

=item *

A block without C<--- config> keeps the running nginx as it is (no reload).

=item *

A configuration that nginx rejects on reload (it logs C<[emerg]> and keeps
the previous configuration) fails the block with the C<[emerg]> lines and
its requests are not sent; nginx keeps running for the next block.  With
C<--- reload_fails> the rejection is expected: the block's requests are
answered by the previous configuration and the C<[emerg]> lines do not
fail it; a reload that succeeds then fails the block.

=item *

A C<--- must_die> block stops the running nginx and runs as usual; the next
block starts nginx again.  The nginx of the last block is stopped at the
end of the file, and C<[alert]>/C<[crit]>/C<[emerg]> lines it logs while
shutting down fail that block.

=item *

Error log and access log checks see the lines logged since the block began
(for a reloaded block this includes nginx's reload messages and the old
workers' exit).  C<--- shutdown_error_log> and C<--- no_shutdown_error_log>
are skipped (as in the real module: nginx does not shut down after the
block).

=back

The real module instead checks that the reload took effect by polling an
extra C<server_name Test-Nginx> server it adds to nginx.conf; this runner
watches the processes and does not add that server.

Assertions have the same names and are counted like in the real module
(one per status code, header, body, log pattern ...; error log patterns are
checked after every request of a block), so
C<plan tests =E<gt> repeat_each() * (N * blocks())> works the same.

=head2 VALGRIND MODE

With C<TEST_NGINX_USE_VALGRIND> set (as with the real module), nginx runs
under valgrind: C<1> (any number) means the real module's options,

    valgrind --num-callers=100 -q --tool=memcheck --leak-check=full
             --keep-debuginfo=yes --show-possibly-lost=no --gen-suppressions=all

any other value is taken as valgrind's options (C<valgrind -q VALUE>).  The
runner adds C<--suppressions=FILE> for F<t/valgrind.suppress> and
F<valgrind.suppress> (relative to the current directory; the real module
reads the latter only) when they exist and for each file of
C<TEST_NGINX_VALGRIND_SUPPRESSIONS> (space-separated), and, last,
C<--log-file=SERVROOT/valgrind/raw/vg.%p.log>: one log per process, so the
records of the master and of every worker stay apart.
C<TEST_NGINX_VALGRIND_BINARY> names the valgrind program (default
C<valgrind> in C<PATH>).

=over

=item *

nginx runs with C<daemon off> (the master process setting is unchanged: off
by default, on in HUP mode, as in the real module); a C<--- must_die> block
runs without valgrind (as in the real module).  nginx counts as started
once it has written its pid file.

=item *

Every time limit of the runner is multiplied by
C<TEST_NGINX_VALGRIND_TIMEOUT_FACTOR> (default 5): C<timeout()> and
C<--- timeout> (client socket), waiting for nginx to start, to stop
(valgrind's leak check runs while a process exits) and to reload, and
connecting.  The pause before reading the logs (C<TEST_NGINX_SLEEP>) is
scaled too unless C<TEST_NGINX_SLEEP> is set.  C<--- wait> is not scaled: it
is part of what a block tests (e.g. an expiry).

=item *

After every block (in HUP mode: what the processes wrote so far, records of
a running process only when complete; the last block also gets what nginx
writes while it stops) the runner reads the new records.  A record is an
error (invalid read or write, invalid or mismatched free, use of an
uninitialised value, overlapping copy, a fatal signal, ...) or a leak
("definitely lost", "indirectly lost"); "possibly lost", "still reachable"
and valgrind's warnings are not counted.

=item *

A record with a frame of the module under test fails the block, with the
record printed: any frame (allocation and free stacks included) in one of
the C<TEST_NGINX_LOAD_MODULES> objects (C<(in /path/lib....so)>, which is
how valgrind names a frame without line tables, also after nginx has
unloaded the module: C<--keep-debuginfo=yes>), a Rust frame of the crate of
a F<libCRATE.so> (C<CRATE::...>, with or without line tables), or a frame
matching the Perl regex C<TEST_NGINX_VALGRIND_MODULE_FRAMES> (needed for a C
module built with line tables, whose frames name source files instead of
the object).  Leaks do not fail a block that has C<--- no_check_leak> (the
real module's section for its check-leak mode; nor,
in HUP mode, a block whose reload started the leaking process): they are
notes there.  These assertions only appear when failing, so plans are
unaffected.

=item *

Records without a frame of the module (nginx, libc) are notes (C<diag>),
not failures.  Note that nginx unloads modules (dlclose) and frees its pools
when a process exits, right before valgrind's leak check: memory that nginx
(or a module, through a static variable) keeps for the life of a process
shows up as "definitely lost".  F<t/valgrind.suppress> lists nginx's own
such allocations.

=item *

In HUP mode a worker's leaks are reported when it exits, i.e. with the block
whose reload replaced it (the message names the block that started it), and
the master's at the end of the file.

=item *

Files, in F<SERVROOT/valgrind/> (kept for the whole test file, emptied when
it starts): F<valgrind.log> (every block's header and records, in order),
F<blocks/NNN-TEST_N.log> (one per block with records), F<failing.log> (the
failing records with their suppressions), F<summary> (counts: C<records>,
C<module>, C<failing>, C<other>, C<ignored>, C<warnings>, C<blocks>).  A
final C<diag> line gives the counts when there were records.

=back

F<scripts/memcheck.sh> runs a set of test files this way against the
vendored nginx and the module.

=head1 KNOWN DIFFERENCES FROM THE REAL Test::Nginx

=over

=item *

Default port: a free port on 127.0.0.1 (chosen once per test file) instead
of 1984, and the default server listens on C<127.0.0.1:PORT> only.

=item *

nginx is started for each block and stopped (QUIT, then TERM/KILL of the
master and its workers, waiting until they are gone) at the end of it.  A
block without C<--- config> runs with the previous block's nginx.conf (the
real module keeps the previous nginx running, with its log).  In HUP mode
nginx keeps running (see L</HUP MODE>); there a block without C<--- config>
only sees its own lines of the logs (the real module's such block also sees
the previous block's lines).

=item *

Stricter: C<[alert]>, C<[crit]> and C<[emerg]> lines in error.log that a
block does not declare (a C<--- error_log> pattern matching the line, or a
C<[alert>-like mention in C<error_log>/C<no_error_log>; C<[emerg]> is
expected with C<must_die>) fail the block, also when logged while nginx
shuts down; so does nginx exiting before the end of a block.  The real
module only warns.  These extra assertions only appear when failing, so
plans are unaffected.

=item *

C<$TEST_NGINX_*> variables are also expanded in C<--- request> (the real
module expands them in C<--- pipelined_requests> only; a note is printed).
C<TEST_NGINX_HTML_DIR> defaults to the server root's F<html> directory.

=item *

nginx failing to start (without C<must_die>) fails the block with nginx's
messages; the real module retries for 30s and then bails out.  With
C<must_die>, C<error_log> patterns also see nginx's stderr.

=item *

C<no_error_log>: one failing assertion per pattern (the real module fails
once per matching line).  C<!Name> in C<response_headers> matches the header
name case-insensitively.  Headers are checked in the order written.

=item *

Valgrind mode checks valgrind's records and fails a block on a record with
a frame of the module (see L</VALGRIND MODE>); the real module only shows
valgrind's output on the terminal.  C<TEST_NGINX_VALGRIND_EXIT_ON_FIRST_ERR>
is not supported.

=item *

Not supported: stap, rr, check-leak and benchmark
modes, HTTP/2 and HTTP/3 (C<--- http2>/C<--- http3> fail the block), the
UDP mock server (C<--- udp_*> fail the block), C<--- curl>,
C<no_nginx_manager>, C<skip_slave>, C<TEST_NGINX_NO_CLEAN>,
C<TEST_NGINX_ERROR_LOG>.

=item *

Robustness additions: SIGINT/TERM/HUP/QUIT/PIPE stop nginx; a small watchdog
process stops nginx if the test process dies without cleaning up (even
SIGKILL); an nginx left over in the server root by an earlier run is
stopped before the next block; on Linux the test process becomes a child
subreaper so the daemonized nginx can be reaped.

=back

=cut
