package EngineIOFrames;

# Engine.IO 3 payload framings that the t/ files build handshake bodies with (shared by
# t/006-learn.t and t/016-sid-prefix.t).

use strict;
use warnings;

# Engine.IO 3 binary payload framing: 0x00 (string packet), the length's decimal digits as
# bytes 0-9, 0xff, the packet.
sub ::binary_frame {
    my $p = shift;
    return "\x00" . join('', map { chr } split //, length $p) . "\xff$p";
}

# JSONP polling: ___eio[N]("<payload as a JSON string>");
sub ::jsonp {
    my ($n, $text) = @_;
    (my $s = $text) =~ s/(["\\])/\\$1/g;
    $s =~ s/\x1e/\\u001e/g;
    return qq{___eio[$n]("$s");};
}

1;
