package StickyCookie;

# The route cookie's peer ids, computed independently of the module: SipHash-2-4 keyed by
# cookie_key= (or the upstream's name), over the server string and the address, as README
# documents. Tests compare the module's Set-Cookie values against these, so a change of the
# ids (which would reissue every client's cookie on upgrade) cannot go unnoticed.
#
# 64-bit words are [hi, lo] pairs of 32-bit integers (Perl's integers hold their products).

use strict;
use warnings;

sub _add { my ($a, $b) = @_; my $lo = $a->[1] + $b->[1];
           return [($a->[0] + $b->[0] + ($lo >> 32)) & 0xffffffff, $lo & 0xffffffff] }
sub _xor { return [$_[0][0] ^ $_[1][0], $_[0][1] ^ $_[1][1]] }
sub _rotl {
    my ($x, $n) = @_;
    ($x, $n) = ([$x->[1], $x->[0]], $n - 32) if $n >= 32;
    return $x if $n == 0;
    return [(($x->[0] << $n) | ($x->[1] >> (32 - $n))) & 0xffffffff,
            (($x->[1] << $n) | ($x->[0] >> (32 - $n))) & 0xffffffff];
}
sub _w { my $h = shift; return [hex substr($h, 0, 8), hex substr($h, 8, 8)] }

sub _round {
    my $v = shift;
    $v->[0] = _add($v->[0], $v->[1]); $v->[1] = _xor(_rotl($v->[1], 13), $v->[0]);
    $v->[0] = _rotl($v->[0], 32);
    $v->[2] = _add($v->[2], $v->[3]); $v->[3] = _xor(_rotl($v->[3], 16), $v->[2]);
    $v->[0] = _add($v->[0], $v->[3]); $v->[3] = _xor(_rotl($v->[3], 21), $v->[0]);
    $v->[2] = _add($v->[2], $v->[1]); $v->[1] = _xor(_rotl($v->[1], 17), $v->[2]);
    $v->[2] = _rotl($v->[2], 32);
}

# SipHash-2-4 of a byte string under the key (k0, k1), as [hi, lo].
sub siphash {
    my ($k0, $k1, $msg) = @_;
    my @v = (_xor($k0, _w('736f6d6570736575')), _xor($k1, _w('646f72616e646f6d')),
             _xor($k0, _w('6c7967656e657261')), _xor($k1, _w('7465646279746573')));
    my $len = length $msg;
    my $padded = $msg . ("\0" x (7 - $len % 8)) . chr($len & 0xff);
    for my $i (0 .. length($padded) / 8 - 1) {
        my ($lo, $hi) = unpack 'VV', substr($padded, 8 * $i, 8);
        my $m = [$hi, $lo];
        $v[3] = _xor($v[3], $m);
        _round(\@v) for 1 .. 2;
        $v[0] = _xor($v[0], $m);
    }
    $v[2] = _xor($v[2], [0, 0xff]);
    _round(\@v) for 1 .. 4;
    return _xor(_xor($v[0], $v[1]), _xor($v[2], $v[3]));
}

sub _le64 { my $n = shift; return pack 'VV', $n & 0xffffffff, 0 }

# The cookie value of the peer SERVER (as written in its `server` line) at ADDR, with
# cookie_key=SECRET (undef: none) in upstream UPSTREAM.
sub ::cookie_id {
    my ($secret, $upstream, $server, $addr) = @_;
    my ($tag, $text) = defined $secret ? ('key', $secret) : ('upstream', $upstream);
    my $d0 = siphash(_w('736f636b6574696f'), _w('5f737469636b7931'), "$tag\0$text");
    my $d1 = siphash(_w('726f7574655f636f'), _w('6f6b69655f6b6579'), "$tag\0$text");
    my $id = siphash($d0, $d1, _le64(length $server) . $server . $addr);
    return sprintf '%08x%08x', @$id;
}

# The reference implementation's first vectors (key 00..0f, message 00..(n-1)).
{
    my ($k0, $k1) = ([0x07060504, 0x03020100], [0x0f0e0d0c, 0x0b0a0908]);
    my $msg = join '', map { chr } 0 .. 14;
    my %want = (0 => '726fdb47dd0e0e31', 1 => '74f839c593dc67fd', 15 => 'a129ca6149be45e5');
    for my $n (sort keys %want) {
        my $got = sprintf '%08x%08x', @{ siphash($k0, $k1, substr($msg, 0, $n)) };
        die "StickyCookie: SipHash self-test failed for length $n: $got\n" if $got ne $want{$n};
    }
}

1;
