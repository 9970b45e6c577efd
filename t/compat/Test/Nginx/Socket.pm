package Test::Nginx::Socket;

# Bundled stand-in for CPAN's Test::Nginx::Socket (used only when the real
# module is not installed; see t/prove).  Test files use it exactly like the
# real one:
#
#     use Test::Nginx::Socket 'no_plan';
#     run_tests();
#     __DATA__
#     === TEST 1: ...
#
# Block parsing and filters come from Test::Base; the engine lives in
# Test::Nginx::Compat (t/compat/Test/Nginx/Compat.pm), whose POD lists the
# supported features and the known differences.

use v5.10.1;
use Test::Base -Base;

use Test::Nginx::Compat ();

our $VERSION = $Test::Nginx::Compat::VERSION;

# Lets t/prove tell this module apart from the real one.
our $IS_COMPAT_RUNNER = 1;

our @EXPORT = @Test::Nginx::Compat::USER_FUNCS;

BEGIN {
    no strict 'refs';
    for my $f (@Test::Nginx::Compat::USER_FUNCS,
               @Test::Nginx::Compat::EXTRA_FUNCS)
    {
        *{"Test::Nginx::Socket::$f"} = \&{"Test::Nginx::Compat::$f"};
    }
}
