//! The error numbers of M3-IPC/DVK.
//!
//! Every call of the fabric fails with one [`Errno`]. Each variant carries the negative number the
//! original DVK returned (its `dvs_errno.h`), so that numbers cross the C ABI unchanged and programs
//! ported from the original keep their error checks.

use core::fmt;

macro_rules! errnos {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $text:literal;)*) => {
        /// An M3-IPC error, with the original DVK's negative error number as its discriminant.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(i32)]
        #[non_exhaustive]
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub enum Errno {
            $($(#[$doc])* #[doc = $text] $name = $code,)*
        }

        impl Errno {
            /// Every error number, in ascending order of magnitude.
            pub const ALL: &'static [Errno] = &[$(Errno::$name,)*];

            /// The negative DVK error number.
            pub const fn code(self) -> i32 {
                self as i32
            }

            /// The error whose DVK number is `code`, if there is one.
            pub const fn from_code(code: i32) -> Option<Errno> {
                match code {
                    $($code => Some(Errno::$name),)*
                    _ => None,
                }
            }

            /// The original's symbolic name, such as `EDVSAGAIN`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Errno::$name => stringify!($name),)*
                }
            }

            /// A short description in English.
            pub const fn description(self) -> &'static str {
                match self {
                    $(Errno::$name => $text,)*
                }
            }
        }
    };
}

errnos! {
    EDVSPERM = -1, "operation not permitted";
    EDVSNOENT = -2, "no such entry";
    EDVSSRCH = -3, "no such process";
    EDVSINTR = -4, "interrupted call";
    EDVSIO = -5, "input/output error";
    EDVSNXIO = -6, "no such device or address";
    EDVS2BIG = -7, "argument list too long";
    EDVSNOEXEC = -8, "exec format error";
    EDVSBADF = -9, "bad file descriptor";
    EDVSCHILD = -10, "no child process";
    EDVSAGAIN = -11, "resource temporarily unavailable (would block)";
    EDVSNOMEM = -12, "not enough memory";
    EDVSACCES = -13, "permission denied";
    EDVSFAULT = -14, "bad address";
    EDVSNOTBLK = -15, "block device required";
    EDVSBUSY = -16, "resource busy";
    EDVSEXIST = -17, "already exists";
    EDVSXDEV = -18, "cross-device link";
    EDVSNODEV = -19, "no such device";
    EDVSNOTDIR = -20, "not a directory";
    EDVSISDIR = -21, "is a directory";
    EDVSINVAL = -22, "invalid argument";
    EDVSNFILE = -23, "too many open files in system";
    EDVSMFILE = -24, "too many open files";
    EDVSNOTTY = -25, "inappropriate ioctl for device";
    EDVSTXTBSY = -26, "text file busy";
    EDVSFBIG = -27, "file too large";
    EDVSNOSPC = -28, "no space left on device";
    EDVSSPIPE = -29, "illegal seek";
    EDVSROFS = -30, "read-only file system";
    EDVSMLINK = -31, "too many links";
    EDVSPIPE = -32, "broken pipe";
    EDVSDOM = -33, "domain error";
    EDVSRANGE = -34, "value out of range";
    EDVSDEADLK = -35, "resource deadlock avoided";
    EDVSNAMETOOLONG = -36, "name too long";
    EDVSNOLCK = -37, "no locks available";
    EDVSNOSYS = -38, "function not implemented";
    EDVSNOTEMPTY = -39, "directory not empty";
    EDVSLOOP = -40, "too many levels of symbolic links";
    EDVSPACKSIZE = -50, "invalid packet size";
    EDVSOUTOFBUFS = -51, "not enough buffers left";
    EDVSBADIOCTL = -52, "illegal ioctl for device";
    EDVSBADMODE = -53, "bad mode";
    EDVSWOULDBLOCK = -54, "operation would block";
    EDVSBADDEST = -55, "not a valid destination";
    EDVSDSTNOTRCH = -56, "destination not reachable";
    EDVSISCONN = -57, "already connected";
    EDVSADDRINUSE = -58, "address in use";
    EDVSCONNREFUSED = -59, "connection refused";
    EDVSCONNRESET = -60, "connection reset";
    EDVSTIMEDOUT = -61, "timed out";
    EDVSURG = -62, "urgent data present";
    EDVSNOURG = -63, "no urgent data present";
    EDVSNOTCONN = -64, "not connected";
    EDVSSHUTDOWN = -65, "shut down";
    EDVSNOCONN = -66, "no such connection";
    EDVSAFNOSUPPORT = -67, "address family not supported";
    EDVSPROTONOSUPPORT = -68, "protocol not supported";
    EDVSPROTOTYPE = -69, "protocol wrong type";
    EDVSINPROGRESS = -70, "operation in progress";
    EDVSADDRNOTAVAIL = -71, "address not available";
    EDVSALREADY = -72, "operation already in progress";
    EDVSMSGSIZE = -73, "message too long";
    EDVSNOTSOCK = -74, "not a socket";
    EDVSNOPROTOOPT = -75, "protocol not available";
    EDVSGENERIC = -99, "generic error";
    EDVSLOCKED = -101, "the call would deadlock";
    EDVSBADCALL = -102, "call not allowed for this endpoint";
    EDVSBADSRCDST = -103, "bad source or destination";
    EDVSCALLDENIED = -104, "call denied";
    EDVSDEADSRCDST = -105, "source or destination died";
    EDVSNOTREADY = -106, "not ready";
    EDVSBADREQUEST = -107, "bad request";
    EDVSSRCDIED = -108, "source died";
    EDVSDSTDIED = -109, "destination died";
    EDVSTRAPDENIED = -110, "IPC to that endpoint not allowed";
    EDVSDONTREPLY = -201, "do not reply";
    EDVSBADNODEID = -301, "bad node id";
    EDVSBADDCID = -302, "bad DC id";
    EDVSDCNOTRUN = -303, "DC not running";
    EDVSBADPROC = -304, "bad process";
    EDVSBADPID = -305, "bad pid";
    EDVSENDPOINT = -306, "stale or invalid endpoint";
    EDVSNOPROXY = -307, "no proxy";
    EDVSRMTPROC = -308, "remote process";
    EDVSLCLPROC = -309, "local process";
    EDVSNOTBIND = -310, "not bound";
    EDVSPROXYRUN = -311, "proxy running";
    EDVSACKDST = -312, "bad acknowledge destination";
    EDVSACKSRC = -313, "bad acknowledge source";
    EDVSACKWAIT = -314, "waiting for acknowledge";
    EDVSNODEBUSY = -315, "node busy";
    EDVSNONODE = -316, "no such node";
    EDVSDVSBUSY = -317, "DVS already initialized";
    EDVSDVSINIT = -318, "DVS not initialized";
    EDVSNODCNODE = -319, "node not in DC";
    EDVSPROCRUN = -320, "process running";
    EDVSNOMSG = -321, "no message";
    EDVSDCRUN = -323, "DC running";
    EDVSPROCSTS = -324, "process not in the required state";
    EDVSNODEFREE = -325, "node free";
    EDVSDCNODE = -326, "node already in DC";
    EDVSBADPROXY = -327, "bad proxy";
    EDVSONCOPY = -328, "copy in progress";
    EDVSENQUEUED = -329, "already enqueued";
    EDVSOVERRUN = -330, "overrun";
    EDVSBADOWNER = -331, "bad owner";
    EDVSMIGRATE = -332, "migration in progress";
    EDVSPROXYFREE = -333, "proxy free";
    EDVSGRPLEADER = -334, "not the group leader";
    EDVSPRIVILEGES = -335, "insufficient privileges";
    EDVSBINDTYPE = -336, "bad bind type";
    EDVSSLOTUSED = -337, "slot already bound";
    EDVSBADRANGE = -338, "bad range";
    EDVSBADVALUE = -339, "bad value";
    EDVSBADDIR = -340, "bad directory";
    EDVSBADFILE = -341, "bad file";
    EDVSRSCBUSY = -342, "resource busy";
    EDVSNAMESIZE = -343, "name too long";
    EDVSALLOCMEM = -344, "memory allocation failed";
    EDVSPROXYID = -345, "bad proxy id";
    EDVSREPLPROC = -346, "replicated process";
    EDVSALIGN = -347, "bad alignment";
    EDVSWOKENUP = -348, "woken up";
    EDVSBADTRAMP = -349, "bad trampoline";
    EDVSUSR2USR = -350, "user to user copy failed";
    EDVSKRN2USR = -351, "kernel to user copy failed";
    EDVSUSR2KRN = -352, "user to kernel copy failed";
    EDVSPRIMARY = -401, "primary replica";
    EDVSNOREPLICA = -402, "no replica";
    EDVSRESTARTSYS = -512, "restart the call";
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.name(),
            self.code(),
            self.description()
        )
    }
}

impl std::error::Error for Errno {}

/// The result of an M3-IPC call.
pub type Result<T> = core::result::Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &e in Errno::ALL {
            assert!(e.code() < 0, "{e:?} must be negative");
            assert!(seen.insert(e.code()), "duplicate code {}", e.code());
            assert_eq!(Errno::from_code(e.code()), Some(e));
        }
        assert_eq!(Errno::from_code(0), None);
        assert_eq!(Errno::from_code(-22_222), None);
    }

    #[test]
    fn numbers_match_the_original() {
        assert_eq!(Errno::EDVSAGAIN.code(), -11);
        assert_eq!(Errno::EDVSTIMEDOUT.code(), -61);
        assert_eq!(Errno::EDVSLOCKED.code(), -101);
        assert_eq!(Errno::EDVSDEADSRCDST.code(), -105);
        assert_eq!(Errno::EDVSSRCDIED.code(), -108);
        assert_eq!(Errno::EDVSDSTDIED.code(), -109);
        assert_eq!(Errno::EDVSENDPOINT.code(), -306);
        assert_eq!(Errno::EDVSNOTBIND.code(), -310);
        assert_eq!(Errno::EDVSPROCSTS.code(), -324);
        assert_eq!(Errno::EDVSOVERRUN.code(), -330);
        assert_eq!(Errno::EDVSSLOTUSED.code(), -337);
        assert_eq!(Errno::EDVSWOKENUP.code(), -348);
        assert_eq!(Errno::EDVSAGAIN.name(), "EDVSAGAIN");
        assert_eq!(Errno::EDVS2BIG.name(), "EDVS2BIG");
    }
}
