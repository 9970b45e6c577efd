package StickyPages;

# Helpers shared by the t/ files that send many devices through the balancer in one request:
# an SSI page holds one `include virtual=... wait="yes"` per device.

use strict;
use warnings;
use IO::Socket::INET;

# Sets $ENV{"${prefix}1"} .. $ENV{"${prefix}N"} to free ports below the usual ephemeral range
# (unless already set), the same for every block of a file: mock backends on them keep their
# identities ("127.0.0.1:PORT") from one block to the next.
sub ::fixed_ports {
    my ($prefix, $n) = @_;
    my %taken;
    for my $i (1 .. $n) {
        my $var = "$prefix$i";
        next if $ENV{$var};
        for (1 .. 1000) {
            my $port = 20000 + int rand 12000;
            next if $taken{$port};
            my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                             Proto => 'tcp', Listen => 1, ReuseAddr => 1)
                or next;
            close $sock;
            $taken{$port} = 1;
            $ENV{$var} = $port;
            last;
        }
        die "no free port for $var\n" unless $ENV{$var};
    }
}

# "dev-0001" .. "dev-NNNN"
sub ::ids {
    my ($n, $prefix) = @_;
    $prefix = 'dev' unless defined $prefix;
    return map { sprintf "%s-%04d", $prefix, $_ } 1 .. $n;
}

# An SSI page with one subrequest per URI, each waited for before the next one starts.
sub ::page {
    return join '', map { qq{<!--# include virtual="$_" wait="yes" -->} } @_;
}

# The first ten of a list (for diagnostics).
sub ::first10 {
    return @_ > 10 ? @_[0 .. 9] : @_;
}

# Mock backends named A, B, ... on the ports $ENV{"${prefix}1"}, $ENV{"${prefix}2"}, ... (A on
# the first, B on the second, whichever of them are asked for): each answers with its
# name and a header X-Backend; a request with `mint=SID` is a handshake, answered with an
# Engine.IO 4 open packet naming SID (which the module learns).
sub ::mock_backends {
    my ($prefix, @names) = @_;
    return join '', map {
        my $n = ord($_) - ord('A') + 1;
        <<"_EOC_";
    server {
        listen 127.0.0.1:\$$prefix$n;
        add_header X-Backend $_;
        location / {
            if (\$arg_mint) {
                return 200 '0{"sid":"\$arg_mint","upgrades":[],"pingInterval":25000,"pingTimeout":20000}';
            }
            return 200 "$_\\n";
        }
    }
_EOC_
    } @names;
}

1;
