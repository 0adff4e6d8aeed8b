//! The error numbers C sees (`M3_EDVS*`, the original's `dvs_errno.h` numbers), `m3_strerror`
//! and `m3_abi_version`.
//!
//! The constants are literals so that cbindgen can put them in `m3ipc.h`; a test checks that
//! they are exactly `m3ipc::Errno`'s numbers, every one of them.

use core::ffi::c_char;
use ipc::Errno;
use std::ffi::CString;
use std::sync::OnceLock;

/// Success.
pub const M3_OK: i32 = 0;
/// `EDVSPERM`: operation not permitted.
pub const M3_EDVSPERM: i32 = -1;
/// `EDVSNOENT`: no such entry.
pub const M3_EDVSNOENT: i32 = -2;
/// `EDVSSRCH`: no such process.
pub const M3_EDVSSRCH: i32 = -3;
/// `EDVSINTR`: interrupted call.
pub const M3_EDVSINTR: i32 = -4;
/// `EDVSIO`: input/output error.
pub const M3_EDVSIO: i32 = -5;
/// `EDVSNXIO`: no such device or address.
pub const M3_EDVSNXIO: i32 = -6;
/// `EDVS2BIG`: argument list too long.
pub const M3_EDVS2BIG: i32 = -7;
/// `EDVSNOEXEC`: exec format error.
pub const M3_EDVSNOEXEC: i32 = -8;
/// `EDVSBADF`: bad file descriptor.
pub const M3_EDVSBADF: i32 = -9;
/// `EDVSCHILD`: no child process.
pub const M3_EDVSCHILD: i32 = -10;
/// `EDVSAGAIN`: resource temporarily unavailable (would block).
pub const M3_EDVSAGAIN: i32 = -11;
/// `EDVSNOMEM`: not enough memory.
pub const M3_EDVSNOMEM: i32 = -12;
/// `EDVSACCES`: permission denied.
pub const M3_EDVSACCES: i32 = -13;
/// `EDVSFAULT`: bad address.
pub const M3_EDVSFAULT: i32 = -14;
/// `EDVSNOTBLK`: block device required.
pub const M3_EDVSNOTBLK: i32 = -15;
/// `EDVSBUSY`: resource busy.
pub const M3_EDVSBUSY: i32 = -16;
/// `EDVSEXIST`: already exists.
pub const M3_EDVSEXIST: i32 = -17;
/// `EDVSXDEV`: cross-device link.
pub const M3_EDVSXDEV: i32 = -18;
/// `EDVSNODEV`: no such device.
pub const M3_EDVSNODEV: i32 = -19;
/// `EDVSNOTDIR`: not a directory.
pub const M3_EDVSNOTDIR: i32 = -20;
/// `EDVSISDIR`: is a directory.
pub const M3_EDVSISDIR: i32 = -21;
/// `EDVSINVAL`: invalid argument.
pub const M3_EDVSINVAL: i32 = -22;
/// `EDVSNFILE`: too many open files in system.
pub const M3_EDVSNFILE: i32 = -23;
/// `EDVSMFILE`: too many open files.
pub const M3_EDVSMFILE: i32 = -24;
/// `EDVSNOTTY`: inappropriate ioctl for device.
pub const M3_EDVSNOTTY: i32 = -25;
/// `EDVSTXTBSY`: text file busy.
pub const M3_EDVSTXTBSY: i32 = -26;
/// `EDVSFBIG`: file too large.
pub const M3_EDVSFBIG: i32 = -27;
/// `EDVSNOSPC`: no space left on device.
pub const M3_EDVSNOSPC: i32 = -28;
/// `EDVSSPIPE`: illegal seek.
pub const M3_EDVSSPIPE: i32 = -29;
/// `EDVSROFS`: read-only file system.
pub const M3_EDVSROFS: i32 = -30;
/// `EDVSMLINK`: too many links.
pub const M3_EDVSMLINK: i32 = -31;
/// `EDVSPIPE`: broken pipe.
pub const M3_EDVSPIPE: i32 = -32;
/// `EDVSDOM`: domain error.
pub const M3_EDVSDOM: i32 = -33;
/// `EDVSRANGE`: value out of range.
pub const M3_EDVSRANGE: i32 = -34;
/// `EDVSDEADLK`: resource deadlock avoided.
pub const M3_EDVSDEADLK: i32 = -35;
/// `EDVSNAMETOOLONG`: name too long.
pub const M3_EDVSNAMETOOLONG: i32 = -36;
/// `EDVSNOLCK`: no locks available.
pub const M3_EDVSNOLCK: i32 = -37;
/// `EDVSNOSYS`: function not implemented.
pub const M3_EDVSNOSYS: i32 = -38;
/// `EDVSNOTEMPTY`: directory not empty.
pub const M3_EDVSNOTEMPTY: i32 = -39;
/// `EDVSLOOP`: too many levels of symbolic links.
pub const M3_EDVSLOOP: i32 = -40;
/// `EDVSPACKSIZE`: invalid packet size.
pub const M3_EDVSPACKSIZE: i32 = -50;
/// `EDVSOUTOFBUFS`: not enough buffers left.
pub const M3_EDVSOUTOFBUFS: i32 = -51;
/// `EDVSBADIOCTL`: illegal ioctl for device.
pub const M3_EDVSBADIOCTL: i32 = -52;
/// `EDVSBADMODE`: bad mode.
pub const M3_EDVSBADMODE: i32 = -53;
/// `EDVSWOULDBLOCK`: operation would block.
pub const M3_EDVSWOULDBLOCK: i32 = -54;
/// `EDVSBADDEST`: not a valid destination.
pub const M3_EDVSBADDEST: i32 = -55;
/// `EDVSDSTNOTRCH`: destination not reachable.
pub const M3_EDVSDSTNOTRCH: i32 = -56;
/// `EDVSISCONN`: already connected.
pub const M3_EDVSISCONN: i32 = -57;
/// `EDVSADDRINUSE`: address in use.
pub const M3_EDVSADDRINUSE: i32 = -58;
/// `EDVSCONNREFUSED`: connection refused.
pub const M3_EDVSCONNREFUSED: i32 = -59;
/// `EDVSCONNRESET`: connection reset.
pub const M3_EDVSCONNRESET: i32 = -60;
/// `EDVSTIMEDOUT`: timed out.
pub const M3_EDVSTIMEDOUT: i32 = -61;
/// `EDVSURG`: urgent data present.
pub const M3_EDVSURG: i32 = -62;
/// `EDVSNOURG`: no urgent data present.
pub const M3_EDVSNOURG: i32 = -63;
/// `EDVSNOTCONN`: not connected.
pub const M3_EDVSNOTCONN: i32 = -64;
/// `EDVSSHUTDOWN`: shut down.
pub const M3_EDVSSHUTDOWN: i32 = -65;
/// `EDVSNOCONN`: no such connection.
pub const M3_EDVSNOCONN: i32 = -66;
/// `EDVSAFNOSUPPORT`: address family not supported.
pub const M3_EDVSAFNOSUPPORT: i32 = -67;
/// `EDVSPROTONOSUPPORT`: protocol not supported.
pub const M3_EDVSPROTONOSUPPORT: i32 = -68;
/// `EDVSPROTOTYPE`: protocol wrong type.
pub const M3_EDVSPROTOTYPE: i32 = -69;
/// `EDVSINPROGRESS`: operation in progress.
pub const M3_EDVSINPROGRESS: i32 = -70;
/// `EDVSADDRNOTAVAIL`: address not available.
pub const M3_EDVSADDRNOTAVAIL: i32 = -71;
/// `EDVSALREADY`: operation already in progress.
pub const M3_EDVSALREADY: i32 = -72;
/// `EDVSMSGSIZE`: message too long.
pub const M3_EDVSMSGSIZE: i32 = -73;
/// `EDVSNOTSOCK`: not a socket.
pub const M3_EDVSNOTSOCK: i32 = -74;
/// `EDVSNOPROTOOPT`: protocol not available.
pub const M3_EDVSNOPROTOOPT: i32 = -75;
/// `EDVSGENERIC`: generic error.
pub const M3_EDVSGENERIC: i32 = -99;
/// `EDVSLOCKED`: the call would deadlock.
pub const M3_EDVSLOCKED: i32 = -101;
/// `EDVSBADCALL`: call not allowed for this endpoint.
pub const M3_EDVSBADCALL: i32 = -102;
/// `EDVSBADSRCDST`: bad source or destination.
pub const M3_EDVSBADSRCDST: i32 = -103;
/// `EDVSCALLDENIED`: call denied.
pub const M3_EDVSCALLDENIED: i32 = -104;
/// `EDVSDEADSRCDST`: source or destination died.
pub const M3_EDVSDEADSRCDST: i32 = -105;
/// `EDVSNOTREADY`: not ready.
pub const M3_EDVSNOTREADY: i32 = -106;
/// `EDVSBADREQUEST`: bad request.
pub const M3_EDVSBADREQUEST: i32 = -107;
/// `EDVSSRCDIED`: source died.
pub const M3_EDVSSRCDIED: i32 = -108;
/// `EDVSDSTDIED`: destination died.
pub const M3_EDVSDSTDIED: i32 = -109;
/// `EDVSTRAPDENIED`: IPC to that endpoint not allowed.
pub const M3_EDVSTRAPDENIED: i32 = -110;
/// `EDVSDONTREPLY`: do not reply.
pub const M3_EDVSDONTREPLY: i32 = -201;
/// `EDVSBADNODEID`: bad node id.
pub const M3_EDVSBADNODEID: i32 = -301;
/// `EDVSBADDCID`: bad DC id.
pub const M3_EDVSBADDCID: i32 = -302;
/// `EDVSDCNOTRUN`: DC not running.
pub const M3_EDVSDCNOTRUN: i32 = -303;
/// `EDVSBADPROC`: bad process.
pub const M3_EDVSBADPROC: i32 = -304;
/// `EDVSBADPID`: bad pid.
pub const M3_EDVSBADPID: i32 = -305;
/// `EDVSENDPOINT`: stale or invalid endpoint.
pub const M3_EDVSENDPOINT: i32 = -306;
/// `EDVSNOPROXY`: no proxy.
pub const M3_EDVSNOPROXY: i32 = -307;
/// `EDVSRMTPROC`: remote process.
pub const M3_EDVSRMTPROC: i32 = -308;
/// `EDVSLCLPROC`: local process.
pub const M3_EDVSLCLPROC: i32 = -309;
/// `EDVSNOTBIND`: not bound.
pub const M3_EDVSNOTBIND: i32 = -310;
/// `EDVSPROXYRUN`: proxy running.
pub const M3_EDVSPROXYRUN: i32 = -311;
/// `EDVSACKDST`: bad acknowledge destination.
pub const M3_EDVSACKDST: i32 = -312;
/// `EDVSACKSRC`: bad acknowledge source.
pub const M3_EDVSACKSRC: i32 = -313;
/// `EDVSACKWAIT`: waiting for acknowledge.
pub const M3_EDVSACKWAIT: i32 = -314;
/// `EDVSNODEBUSY`: node busy.
pub const M3_EDVSNODEBUSY: i32 = -315;
/// `EDVSNONODE`: no such node.
pub const M3_EDVSNONODE: i32 = -316;
/// `EDVSDVSBUSY`: DVS already initialized.
pub const M3_EDVSDVSBUSY: i32 = -317;
/// `EDVSDVSINIT`: DVS not initialized.
pub const M3_EDVSDVSINIT: i32 = -318;
/// `EDVSNODCNODE`: node not in DC.
pub const M3_EDVSNODCNODE: i32 = -319;
/// `EDVSPROCRUN`: process running.
pub const M3_EDVSPROCRUN: i32 = -320;
/// `EDVSNOMSG`: no message.
pub const M3_EDVSNOMSG: i32 = -321;
/// `EDVSDCRUN`: DC running.
pub const M3_EDVSDCRUN: i32 = -323;
/// `EDVSPROCSTS`: process not in the required state.
pub const M3_EDVSPROCSTS: i32 = -324;
/// `EDVSNODEFREE`: node free.
pub const M3_EDVSNODEFREE: i32 = -325;
/// `EDVSDCNODE`: node already in DC.
pub const M3_EDVSDCNODE: i32 = -326;
/// `EDVSBADPROXY`: bad proxy.
pub const M3_EDVSBADPROXY: i32 = -327;
/// `EDVSONCOPY`: copy in progress.
pub const M3_EDVSONCOPY: i32 = -328;
/// `EDVSENQUEUED`: already enqueued.
pub const M3_EDVSENQUEUED: i32 = -329;
/// `EDVSOVERRUN`: overrun.
pub const M3_EDVSOVERRUN: i32 = -330;
/// `EDVSBADOWNER`: bad owner.
pub const M3_EDVSBADOWNER: i32 = -331;
/// `EDVSMIGRATE`: migration in progress.
pub const M3_EDVSMIGRATE: i32 = -332;
/// `EDVSPROXYFREE`: proxy free.
pub const M3_EDVSPROXYFREE: i32 = -333;
/// `EDVSGRPLEADER`: not the group leader.
pub const M3_EDVSGRPLEADER: i32 = -334;
/// `EDVSPRIVILEGES`: insufficient privileges.
pub const M3_EDVSPRIVILEGES: i32 = -335;
/// `EDVSBINDTYPE`: bad bind type.
pub const M3_EDVSBINDTYPE: i32 = -336;
/// `EDVSSLOTUSED`: slot already bound.
pub const M3_EDVSSLOTUSED: i32 = -337;
/// `EDVSBADRANGE`: bad range.
pub const M3_EDVSBADRANGE: i32 = -338;
/// `EDVSBADVALUE`: bad value.
pub const M3_EDVSBADVALUE: i32 = -339;
/// `EDVSBADDIR`: bad directory.
pub const M3_EDVSBADDIR: i32 = -340;
/// `EDVSBADFILE`: bad file.
pub const M3_EDVSBADFILE: i32 = -341;
/// `EDVSRSCBUSY`: resource busy.
pub const M3_EDVSRSCBUSY: i32 = -342;
/// `EDVSNAMESIZE`: name too long.
pub const M3_EDVSNAMESIZE: i32 = -343;
/// `EDVSALLOCMEM`: memory allocation failed.
pub const M3_EDVSALLOCMEM: i32 = -344;
/// `EDVSPROXYID`: bad proxy id.
pub const M3_EDVSPROXYID: i32 = -345;
/// `EDVSREPLPROC`: replicated process.
pub const M3_EDVSREPLPROC: i32 = -346;
/// `EDVSALIGN`: bad alignment.
pub const M3_EDVSALIGN: i32 = -347;
/// `EDVSWOKENUP`: woken up.
pub const M3_EDVSWOKENUP: i32 = -348;
/// `EDVSBADTRAMP`: bad trampoline.
pub const M3_EDVSBADTRAMP: i32 = -349;
/// `EDVSUSR2USR`: user to user copy failed.
pub const M3_EDVSUSR2USR: i32 = -350;
/// `EDVSKRN2USR`: kernel to user copy failed.
pub const M3_EDVSKRN2USR: i32 = -351;
/// `EDVSUSR2KRN`: user to kernel copy failed.
pub const M3_EDVSUSR2KRN: i32 = -352;
/// `EDVSPRIMARY`: primary replica.
pub const M3_EDVSPRIMARY: i32 = -401;
/// `EDVSNOREPLICA`: no replica.
pub const M3_EDVSNOREPLICA: i32 = -402;
/// `EDVSRESTARTSYS`: restart the call.
pub const M3_EDVSRESTARTSYS: i32 = -512;

/// The ABI version of the library loaded at run time (compare with `M3_ABI_VERSION` of the
/// header compiled against).
#[unsafe(no_mangle)]
pub extern "C" fn m3_abi_version() -> u32 {
    crate::M3_ABI_VERSION
}

/// A static, NUL-terminated description of `code`: `"OK"` for 0, `"EDVSAGAIN (-11): resource
/// temporarily unavailable (would block)"` for an error number, `"unknown error"` otherwise
/// (positive values included). Never NULL; the string lives as long as the process.
#[unsafe(no_mangle)]
pub extern "C" fn m3_strerror(code: i32) -> *const c_char {
    std::panic::catch_unwind(|| describe(code)).unwrap_or(c"unknown error".as_ptr())
}

fn describe(code: i32) -> *const c_char {
    static TEXTS: OnceLock<Vec<(i32, CString)>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        Errno::ALL
            .iter()
            .filter_map(|e| Some((e.code(), CString::new(e.to_string()).ok()?)))
            .collect()
    });
    if code == 0 {
        return c"OK".as_ptr();
    }
    texts
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(c"unknown error".as_ptr(), |(_, s)| s.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// Every constant, by name.
    const CONSTS: &[(&str, i32)] = &[
        ("EDVSPERM", M3_EDVSPERM),
        ("EDVSNOENT", M3_EDVSNOENT),
        ("EDVSSRCH", M3_EDVSSRCH),
        ("EDVSINTR", M3_EDVSINTR),
        ("EDVSIO", M3_EDVSIO),
        ("EDVSNXIO", M3_EDVSNXIO),
        ("EDVS2BIG", M3_EDVS2BIG),
        ("EDVSNOEXEC", M3_EDVSNOEXEC),
        ("EDVSBADF", M3_EDVSBADF),
        ("EDVSCHILD", M3_EDVSCHILD),
        ("EDVSAGAIN", M3_EDVSAGAIN),
        ("EDVSNOMEM", M3_EDVSNOMEM),
        ("EDVSACCES", M3_EDVSACCES),
        ("EDVSFAULT", M3_EDVSFAULT),
        ("EDVSNOTBLK", M3_EDVSNOTBLK),
        ("EDVSBUSY", M3_EDVSBUSY),
        ("EDVSEXIST", M3_EDVSEXIST),
        ("EDVSXDEV", M3_EDVSXDEV),
        ("EDVSNODEV", M3_EDVSNODEV),
        ("EDVSNOTDIR", M3_EDVSNOTDIR),
        ("EDVSISDIR", M3_EDVSISDIR),
        ("EDVSINVAL", M3_EDVSINVAL),
        ("EDVSNFILE", M3_EDVSNFILE),
        ("EDVSMFILE", M3_EDVSMFILE),
        ("EDVSNOTTY", M3_EDVSNOTTY),
        ("EDVSTXTBSY", M3_EDVSTXTBSY),
        ("EDVSFBIG", M3_EDVSFBIG),
        ("EDVSNOSPC", M3_EDVSNOSPC),
        ("EDVSSPIPE", M3_EDVSSPIPE),
        ("EDVSROFS", M3_EDVSROFS),
        ("EDVSMLINK", M3_EDVSMLINK),
        ("EDVSPIPE", M3_EDVSPIPE),
        ("EDVSDOM", M3_EDVSDOM),
        ("EDVSRANGE", M3_EDVSRANGE),
        ("EDVSDEADLK", M3_EDVSDEADLK),
        ("EDVSNAMETOOLONG", M3_EDVSNAMETOOLONG),
        ("EDVSNOLCK", M3_EDVSNOLCK),
        ("EDVSNOSYS", M3_EDVSNOSYS),
        ("EDVSNOTEMPTY", M3_EDVSNOTEMPTY),
        ("EDVSLOOP", M3_EDVSLOOP),
        ("EDVSPACKSIZE", M3_EDVSPACKSIZE),
        ("EDVSOUTOFBUFS", M3_EDVSOUTOFBUFS),
        ("EDVSBADIOCTL", M3_EDVSBADIOCTL),
        ("EDVSBADMODE", M3_EDVSBADMODE),
        ("EDVSWOULDBLOCK", M3_EDVSWOULDBLOCK),
        ("EDVSBADDEST", M3_EDVSBADDEST),
        ("EDVSDSTNOTRCH", M3_EDVSDSTNOTRCH),
        ("EDVSISCONN", M3_EDVSISCONN),
        ("EDVSADDRINUSE", M3_EDVSADDRINUSE),
        ("EDVSCONNREFUSED", M3_EDVSCONNREFUSED),
        ("EDVSCONNRESET", M3_EDVSCONNRESET),
        ("EDVSTIMEDOUT", M3_EDVSTIMEDOUT),
        ("EDVSURG", M3_EDVSURG),
        ("EDVSNOURG", M3_EDVSNOURG),
        ("EDVSNOTCONN", M3_EDVSNOTCONN),
        ("EDVSSHUTDOWN", M3_EDVSSHUTDOWN),
        ("EDVSNOCONN", M3_EDVSNOCONN),
        ("EDVSAFNOSUPPORT", M3_EDVSAFNOSUPPORT),
        ("EDVSPROTONOSUPPORT", M3_EDVSPROTONOSUPPORT),
        ("EDVSPROTOTYPE", M3_EDVSPROTOTYPE),
        ("EDVSINPROGRESS", M3_EDVSINPROGRESS),
        ("EDVSADDRNOTAVAIL", M3_EDVSADDRNOTAVAIL),
        ("EDVSALREADY", M3_EDVSALREADY),
        ("EDVSMSGSIZE", M3_EDVSMSGSIZE),
        ("EDVSNOTSOCK", M3_EDVSNOTSOCK),
        ("EDVSNOPROTOOPT", M3_EDVSNOPROTOOPT),
        ("EDVSGENERIC", M3_EDVSGENERIC),
        ("EDVSLOCKED", M3_EDVSLOCKED),
        ("EDVSBADCALL", M3_EDVSBADCALL),
        ("EDVSBADSRCDST", M3_EDVSBADSRCDST),
        ("EDVSCALLDENIED", M3_EDVSCALLDENIED),
        ("EDVSDEADSRCDST", M3_EDVSDEADSRCDST),
        ("EDVSNOTREADY", M3_EDVSNOTREADY),
        ("EDVSBADREQUEST", M3_EDVSBADREQUEST),
        ("EDVSSRCDIED", M3_EDVSSRCDIED),
        ("EDVSDSTDIED", M3_EDVSDSTDIED),
        ("EDVSTRAPDENIED", M3_EDVSTRAPDENIED),
        ("EDVSDONTREPLY", M3_EDVSDONTREPLY),
        ("EDVSBADNODEID", M3_EDVSBADNODEID),
        ("EDVSBADDCID", M3_EDVSBADDCID),
        ("EDVSDCNOTRUN", M3_EDVSDCNOTRUN),
        ("EDVSBADPROC", M3_EDVSBADPROC),
        ("EDVSBADPID", M3_EDVSBADPID),
        ("EDVSENDPOINT", M3_EDVSENDPOINT),
        ("EDVSNOPROXY", M3_EDVSNOPROXY),
        ("EDVSRMTPROC", M3_EDVSRMTPROC),
        ("EDVSLCLPROC", M3_EDVSLCLPROC),
        ("EDVSNOTBIND", M3_EDVSNOTBIND),
        ("EDVSPROXYRUN", M3_EDVSPROXYRUN),
        ("EDVSACKDST", M3_EDVSACKDST),
        ("EDVSACKSRC", M3_EDVSACKSRC),
        ("EDVSACKWAIT", M3_EDVSACKWAIT),
        ("EDVSNODEBUSY", M3_EDVSNODEBUSY),
        ("EDVSNONODE", M3_EDVSNONODE),
        ("EDVSDVSBUSY", M3_EDVSDVSBUSY),
        ("EDVSDVSINIT", M3_EDVSDVSINIT),
        ("EDVSNODCNODE", M3_EDVSNODCNODE),
        ("EDVSPROCRUN", M3_EDVSPROCRUN),
        ("EDVSNOMSG", M3_EDVSNOMSG),
        ("EDVSDCRUN", M3_EDVSDCRUN),
        ("EDVSPROCSTS", M3_EDVSPROCSTS),
        ("EDVSNODEFREE", M3_EDVSNODEFREE),
        ("EDVSDCNODE", M3_EDVSDCNODE),
        ("EDVSBADPROXY", M3_EDVSBADPROXY),
        ("EDVSONCOPY", M3_EDVSONCOPY),
        ("EDVSENQUEUED", M3_EDVSENQUEUED),
        ("EDVSOVERRUN", M3_EDVSOVERRUN),
        ("EDVSBADOWNER", M3_EDVSBADOWNER),
        ("EDVSMIGRATE", M3_EDVSMIGRATE),
        ("EDVSPROXYFREE", M3_EDVSPROXYFREE),
        ("EDVSGRPLEADER", M3_EDVSGRPLEADER),
        ("EDVSPRIVILEGES", M3_EDVSPRIVILEGES),
        ("EDVSBINDTYPE", M3_EDVSBINDTYPE),
        ("EDVSSLOTUSED", M3_EDVSSLOTUSED),
        ("EDVSBADRANGE", M3_EDVSBADRANGE),
        ("EDVSBADVALUE", M3_EDVSBADVALUE),
        ("EDVSBADDIR", M3_EDVSBADDIR),
        ("EDVSBADFILE", M3_EDVSBADFILE),
        ("EDVSRSCBUSY", M3_EDVSRSCBUSY),
        ("EDVSNAMESIZE", M3_EDVSNAMESIZE),
        ("EDVSALLOCMEM", M3_EDVSALLOCMEM),
        ("EDVSPROXYID", M3_EDVSPROXYID),
        ("EDVSREPLPROC", M3_EDVSREPLPROC),
        ("EDVSALIGN", M3_EDVSALIGN),
        ("EDVSWOKENUP", M3_EDVSWOKENUP),
        ("EDVSBADTRAMP", M3_EDVSBADTRAMP),
        ("EDVSUSR2USR", M3_EDVSUSR2USR),
        ("EDVSKRN2USR", M3_EDVSKRN2USR),
        ("EDVSUSR2KRN", M3_EDVSUSR2KRN),
        ("EDVSPRIMARY", M3_EDVSPRIMARY),
        ("EDVSNOREPLICA", M3_EDVSNOREPLICA),
        ("EDVSRESTARTSYS", M3_EDVSRESTARTSYS),
    ];

    #[test]
    fn constants_are_the_fabrics_numbers() {
        assert_eq!(
            CONSTS.len(),
            Errno::ALL.len(),
            "an Errno without a constant"
        );
        for &(name, code) in CONSTS {
            let e = Errno::from_code(code).unwrap_or_else(|| panic!("{name}: no Errno {code}"));
            assert_eq!(e.name(), name);
        }
    }

    #[test]
    fn strerror_names_the_error() {
        let text = |c| {
            // SAFETY: m3_strerror returns a static NUL-terminated string, never NULL.
            unsafe { CStr::from_ptr(m3_strerror(c)) }
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(text(0), "OK");
        assert!(text(-11).starts_with("EDVSAGAIN (-11)"));
        assert!(text(-348).starts_with("EDVSWOKENUP"));
        assert_eq!(text(-12345), "unknown error");
        assert_eq!(text(5), "unknown error");
    }
}
