//! errno numbers to their names (ECONNREFUSED, ...), for output and error messages.
//!
//! The numbering is the generic one (`asm-generic/errno-base.h` and `asm-generic/errno.h`)
//! that x86_64 and aarch64 share. 41 and 58 are holes there: their old names (EWOULDBLOCK,
//! EDEADLOCK) are aliases of 11 and 35, so they have no name of their own.

/// Names of errno 1..=133, index = errno - 1. Empty = unused number.
#[rustfmt::skip]
const NAMES: [&str; 133] = [
    "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG", "ENOEXEC", "EBADF", "ECHILD",
    "EAGAIN", "ENOMEM", "EACCES", "EFAULT", "ENOTBLK", "EBUSY", "EEXIST", "EXDEV", "ENODEV",
    "ENOTDIR", "EISDIR", "EINVAL", "ENFILE", "EMFILE", "ENOTTY", "ETXTBSY", "EFBIG", "ENOSPC",
    "ESPIPE", "EROFS", "EMLINK", "EPIPE", "EDOM", "ERANGE", // 34: end of errno-base.h
    "EDEADLK", "ENAMETOOLONG", "ENOLCK", "ENOSYS", "ENOTEMPTY", "ELOOP", "", "ENOMSG", "EIDRM",
    "ECHRNG", "EL2NSYNC", "EL3HLT", "EL3RST", "ELNRNG", "EUNATCH", "ENOCSI", "EL2HLT", "EBADE",
    "EBADR", "EXFULL", "ENOANO", "EBADRQC", "EBADSLT", "", "EBFONT", "ENOSTR", "ENODATA",
    "ETIME", "ENOSR", "ENONET", "ENOPKG", "EREMOTE", "ENOLINK", "EADV", "ESRMNT", "ECOMM",
    "EPROTO", "EMULTIHOP", "EDOTDOT", "EBADMSG", "EOVERFLOW", "ENOTUNIQ", "EBADFD", "EREMCHG",
    "ELIBACC", "ELIBBAD", "ELIBSCN", "ELIBMAX", "ELIBEXEC", "EILSEQ", "ERESTART", "ESTRPIPE",
    "EUSERS", "ENOTSOCK", "EDESTADDRREQ", "EMSGSIZE", "EPROTOTYPE", "ENOPROTOOPT",
    "EPROTONOSUPPORT", "ESOCKTNOSUPPORT", "EOPNOTSUPP", "EPFNOSUPPORT", "EAFNOSUPPORT",
    "EADDRINUSE", "EADDRNOTAVAIL", "ENETDOWN", "ENETUNREACH", "ENETRESET", "ECONNABORTED",
    "ECONNRESET", "ENOBUFS", "EISCONN", "ENOTCONN", "ESHUTDOWN", "ETOOMANYREFS", "ETIMEDOUT",
    "ECONNREFUSED", "EHOSTDOWN", "EHOSTUNREACH", "EALREADY", "EINPROGRESS", "ESTALE",
    "EUCLEAN", "ENOTNAM", "ENAVAIL", "EISNAM", "EREMOTEIO", "EDQUOT", "ENOMEDIUM",
    "EMEDIUMTYPE", "ECANCELED", "ENOKEY", "EKEYEXPIRED", "EKEYREVOKED", "EKEYREJECTED",
    "EOWNERDEAD", "ENOTRECOVERABLE", "ERFKILL", "EHWPOISON",
];

/// The symbolic name of a Linux errno, if it has one.
pub fn name(errno: i32) -> Option<&'static str> {
    let index = usize::try_from(errno).ok()?.checked_sub(1)?;
    NAMES.get(index).copied().filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::name;

    #[test]
    fn common_connect_errors() {
        assert_eq!(name(111), Some("ECONNREFUSED"));
        assert_eq!(name(110), Some("ETIMEDOUT"));
        assert_eq!(name(113), Some("EHOSTUNREACH"));
        assert_eq!(name(101), Some("ENETUNREACH"));
        assert_eq!(name(99), Some("EADDRNOTAVAIL"));
        assert_eq!(name(1), Some("EPERM"));
        assert_eq!(name(133), Some("EHWPOISON"));
    }

    #[test]
    fn out_of_range_and_holes_have_no_name() {
        for n in [0, -1, -111, 134, 512, i32::MIN, i32::MAX, 41, 58] {
            assert_eq!(name(n), None, "errno {n}");
        }
    }

    /// Cross-check every number against the libc crate's constants for this target.
    #[test]
    #[rustfmt::skip]
    fn matches_libc_constants() {
        let known: &[(i32, &str)] = &[
            (libc::EPERM, "EPERM"), (libc::ENOENT, "ENOENT"), (libc::ESRCH, "ESRCH"),
            (libc::EINTR, "EINTR"), (libc::EIO, "EIO"), (libc::ENXIO, "ENXIO"),
            (libc::E2BIG, "E2BIG"), (libc::ENOEXEC, "ENOEXEC"), (libc::EBADF, "EBADF"),
            (libc::ECHILD, "ECHILD"), (libc::EAGAIN, "EAGAIN"), (libc::ENOMEM, "ENOMEM"),
            (libc::EACCES, "EACCES"), (libc::EFAULT, "EFAULT"), (libc::ENOTBLK, "ENOTBLK"),
            (libc::EBUSY, "EBUSY"), (libc::EEXIST, "EEXIST"), (libc::EXDEV, "EXDEV"),
            (libc::ENODEV, "ENODEV"), (libc::ENOTDIR, "ENOTDIR"), (libc::EISDIR, "EISDIR"),
            (libc::EINVAL, "EINVAL"), (libc::ENFILE, "ENFILE"), (libc::EMFILE, "EMFILE"),
            (libc::ENOTTY, "ENOTTY"), (libc::ETXTBSY, "ETXTBSY"), (libc::EFBIG, "EFBIG"),
            (libc::ENOSPC, "ENOSPC"), (libc::ESPIPE, "ESPIPE"), (libc::EROFS, "EROFS"),
            (libc::EMLINK, "EMLINK"), (libc::EPIPE, "EPIPE"), (libc::EDOM, "EDOM"),
            (libc::ERANGE, "ERANGE"), (libc::EDEADLK, "EDEADLK"),
            (libc::ENAMETOOLONG, "ENAMETOOLONG"), (libc::ENOLCK, "ENOLCK"),
            (libc::ENOSYS, "ENOSYS"), (libc::ENOTEMPTY, "ENOTEMPTY"), (libc::ELOOP, "ELOOP"),
            (libc::ENOMSG, "ENOMSG"), (libc::EIDRM, "EIDRM"), (libc::ECHRNG, "ECHRNG"),
            (libc::EL2NSYNC, "EL2NSYNC"), (libc::EL3HLT, "EL3HLT"), (libc::EL3RST, "EL3RST"),
            (libc::ELNRNG, "ELNRNG"), (libc::EUNATCH, "EUNATCH"), (libc::ENOCSI, "ENOCSI"),
            (libc::EL2HLT, "EL2HLT"), (libc::EBADE, "EBADE"), (libc::EBADR, "EBADR"),
            (libc::EXFULL, "EXFULL"), (libc::ENOANO, "ENOANO"), (libc::EBADRQC, "EBADRQC"),
            (libc::EBADSLT, "EBADSLT"), (libc::EBFONT, "EBFONT"), (libc::ENOSTR, "ENOSTR"),
            (libc::ENODATA, "ENODATA"), (libc::ETIME, "ETIME"), (libc::ENOSR, "ENOSR"),
            (libc::ENONET, "ENONET"), (libc::ENOPKG, "ENOPKG"), (libc::EREMOTE, "EREMOTE"),
            (libc::ENOLINK, "ENOLINK"), (libc::EADV, "EADV"), (libc::ESRMNT, "ESRMNT"),
            (libc::ECOMM, "ECOMM"), (libc::EPROTO, "EPROTO"), (libc::EMULTIHOP, "EMULTIHOP"),
            (libc::EDOTDOT, "EDOTDOT"), (libc::EBADMSG, "EBADMSG"),
            (libc::EOVERFLOW, "EOVERFLOW"), (libc::ENOTUNIQ, "ENOTUNIQ"),
            (libc::EBADFD, "EBADFD"), (libc::EREMCHG, "EREMCHG"), (libc::ELIBACC, "ELIBACC"),
            (libc::ELIBBAD, "ELIBBAD"), (libc::ELIBSCN, "ELIBSCN"), (libc::ELIBMAX, "ELIBMAX"),
            (libc::ELIBEXEC, "ELIBEXEC"), (libc::EILSEQ, "EILSEQ"), (libc::ERESTART, "ERESTART"),
            (libc::ESTRPIPE, "ESTRPIPE"), (libc::EUSERS, "EUSERS"), (libc::ENOTSOCK, "ENOTSOCK"),
            (libc::EDESTADDRREQ, "EDESTADDRREQ"), (libc::EMSGSIZE, "EMSGSIZE"),
            (libc::EPROTOTYPE, "EPROTOTYPE"), (libc::ENOPROTOOPT, "ENOPROTOOPT"),
            (libc::EPROTONOSUPPORT, "EPROTONOSUPPORT"),
            (libc::ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT"), (libc::EOPNOTSUPP, "EOPNOTSUPP"),
            (libc::EPFNOSUPPORT, "EPFNOSUPPORT"), (libc::EAFNOSUPPORT, "EAFNOSUPPORT"),
            (libc::EADDRINUSE, "EADDRINUSE"), (libc::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
            (libc::ENETDOWN, "ENETDOWN"), (libc::ENETUNREACH, "ENETUNREACH"),
            (libc::ENETRESET, "ENETRESET"), (libc::ECONNABORTED, "ECONNABORTED"),
            (libc::ECONNRESET, "ECONNRESET"), (libc::ENOBUFS, "ENOBUFS"),
            (libc::EISCONN, "EISCONN"), (libc::ENOTCONN, "ENOTCONN"),
            (libc::ESHUTDOWN, "ESHUTDOWN"), (libc::ETOOMANYREFS, "ETOOMANYREFS"),
            (libc::ETIMEDOUT, "ETIMEDOUT"), (libc::ECONNREFUSED, "ECONNREFUSED"),
            (libc::EHOSTDOWN, "EHOSTDOWN"), (libc::EHOSTUNREACH, "EHOSTUNREACH"),
            (libc::EALREADY, "EALREADY"), (libc::EINPROGRESS, "EINPROGRESS"),
            (libc::ESTALE, "ESTALE"), (libc::EUCLEAN, "EUCLEAN"), (libc::ENOTNAM, "ENOTNAM"),
            (libc::ENAVAIL, "ENAVAIL"), (libc::EISNAM, "EISNAM"),
            (libc::EREMOTEIO, "EREMOTEIO"), (libc::EDQUOT, "EDQUOT"),
            (libc::ENOMEDIUM, "ENOMEDIUM"), (libc::EMEDIUMTYPE, "EMEDIUMTYPE"),
            (libc::ECANCELED, "ECANCELED"), (libc::ENOKEY, "ENOKEY"),
            (libc::EKEYEXPIRED, "EKEYEXPIRED"), (libc::EKEYREVOKED, "EKEYREVOKED"),
            (libc::EKEYREJECTED, "EKEYREJECTED"), (libc::EOWNERDEAD, "EOWNERDEAD"),
            (libc::ENOTRECOVERABLE, "ENOTRECOVERABLE"), (libc::ERFKILL, "ERFKILL"),
            (libc::EHWPOISON, "EHWPOISON"),
        ];
        assert_eq!(known.len(), 131, "133 numbers minus the two holes");
        for &(number, expected) in known {
            assert_eq!(name(number), Some(expected), "errno {number}");
        }
    }
}
