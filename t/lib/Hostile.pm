package Hostile;

# A raw-TCP mock backend for t/013-hostile-backends.t: it answers each connection with bytes
# chosen by the test file, however broken (bad framing, early close, hang, reset), which an
# nginx mock backend cannot send. Test::Nginx's --- tcp_listen serves one connection per block;
# this server serves any number, for the whole file, so that one block can send the same
# hostile response through the module and through a plain proxy_pass to compare them.
#
#   ::hostile_server(PORT, \%CASES);   # before run_tests()
#
# A request whose query has a `sid` argument (a follow-up) is answered "H\n" (200). Any other
# request names its reply with `case=NAME`: $CASES{NAME} is a code ref called with the query
# arguments (a hash ref) that returns the reply as a list of parts, each sent as it comes
# (TCP_NODELAY, one write per part):
#   "bytes"               written as is
#   { sleep => SECS }     a pause
#   { hang => SECS }      stop answering for SECS (then close)
#   { reset => 1 }        close with a TCP reset (SO_LINGER 0) instead of a FIN
# after which the connection is closed. An unknown case is answered 404.
#
# Each connection is served by a child process; the server and its children exit when the
# test process does (they watch their parent), and at the end of the file (a cleanup handler
# of the runner, and END).

use strict;
use warnings;
use IO::Socket::INET ();
use IO::Select ();
use POSIX ();
use Socket qw(IPPROTO_TCP TCP_NODELAY SOL_SOCKET SO_LINGER);
use Time::HiRes qw(sleep time);

my $ServerPid;
my $Owner = $$;

sub ::hostile_server {
    my ($port, $cases) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                       Proto => 'tcp', Listen => 128, ReuseAddr => 1)
        or die "hostile server: cannot listen on 127.0.0.1:$port: $!\n";
    my $parent = $$;
    my $pid = fork;
    die "hostile server: fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        eval { _serve($listen, $cases, $parent) };
        POSIX::_exit(0);
    }
    close $listen;
    $ServerPid = $pid;
    if (defined &Test::Nginx::Socket::add_cleanup_handler) {
        Test::Nginx::Socket::add_cleanup_handler(\&_stop);
    }
    return $pid;
}

sub _stop {
    return unless $ServerPid && $$ == $Owner;
    my $pid = $ServerPid;
    undef $ServerPid;
    kill 'TERM', $pid;
    my $deadline = time + 3;
    while (time < $deadline) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        return if $r == $pid || $r == -1;
        sleep 0.02;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

END { _stop() }

sub _serve {
    my ($listen, $cases, $parent) = @_;
    my %kids;
    $SIG{$_} = 'DEFAULT' for qw(INT HUP QUIT CHLD);
    $SIG{PIPE} = 'IGNORE';
    $SIG{TERM} = sub {
        kill 'KILL', keys %kids if %kids;
        POSIX::_exit(0);
    };
    my $me = $$;
    my $sel = IO::Select->new($listen);
    while (1) {
        POSIX::_exit(0) if getppid() != $parent;
        while ((my $k = waitpid(-1, POSIX::WNOHANG())) > 0) {
            delete $kids{$k};
        }
        next unless $sel->can_read(0.2);
        my $c = $listen->accept or next;
        my $k = fork;
        if (!defined $k) {
            close $c;
            next;
        }
        if ($k == 0) {
            $SIG{TERM} = 'DEFAULT';
            close $listen;
            eval { _connection($c, $cases, $me) };
            POSIX::_exit(0);
        }
        $kids{$k} = 1;
        close $c;
    }
}

# Sleeps SECS unless the server goes away first.
sub _nap {
    my ($secs, $server) = @_;
    my $until = time + $secs;
    while (time < $until) {
        POSIX::_exit(0) if getppid() != $server;
        my $left = $until - time;
        sleep($left < 0.1 ? $left : 0.1) if $left > 0;
    }
}

sub _connection {
    my ($c, $cases, $server) = @_;
    setsockopt($c, IPPROTO_TCP, TCP_NODELAY, 1);
    my $head = '';
    my $sel = IO::Select->new($c);
    my $until = time + 5;
    while (index($head, "\r\n\r\n") < 0) {
        return if time > $until;
        next unless $sel->can_read(0.2);
        my $n = sysread($c, my $buf, 65536);
        return unless $n;
        $head .= $buf;
    }
    my ($target) = $head =~ m{^[A-Z]+ (\S+) HTTP/} or return;
    my ($query) = $target =~ /\?(.*)\z/;
    my %arg;
    for my $pair (split /&/, $query // '') {
        my ($k, $v) = split /=/, $pair, 2;
        $arg{$k} //= $v // '';
    }

    my @parts;
    if (exists $arg{sid}) {
        @parts = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                  . "Connection: close\r\n\r\nH\n");
    } elsif (defined $arg{case} && $cases->{$arg{case}}) {
        @parts = $cases->{$arg{case}}->(\%arg);
    } else {
        @parts = ("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }

    for my $p (@parts) {
        if (!ref $p) {
            my $off = 0;
            while ($off < length $p) {
                my $n = syswrite($c, $p, length($p) - $off, $off);
                return unless defined $n;     # nginx gave up on us
                $off += $n;
            }
        } elsif (defined $p->{sleep}) {
            _nap($p->{sleep}, $server);
        } elsif (defined $p->{hang}) {
            _nap($p->{hang}, $server);
        } elsif ($p->{reset}) {
            setsockopt($c, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
            close $c;
            return;
        }
    }
    shutdown($c, 1);
    close $c;
}

1;
