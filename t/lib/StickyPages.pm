package StickyPages;

# Helpers shared by the t/ files that send many devices through the balancer in one request:
# an SSI page holds one `include virtual=... wait="yes"` per device.

use strict;
use warnings;

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

1;
