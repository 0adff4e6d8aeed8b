//! Sharing a DC with a group of users: its region and pool files get that group and a mode such
//! as 0660. The region file is the DC's trust boundary (whoever can write it can disturb this
//! DC, never another), so its group and mode say who may bind in it.

use crate::dc::Dc;
use crate::region::DcError;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The group id of `group`: a number, or a name from the group database.
pub fn group_id(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(group).map_err(|_| format!("bad group name {group:?}"))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: a zeroed `group` is a valid out-value for getgrnam_r to fill.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `name` is NUL-terminated, `grp` and `found`
    // are out-values, `buf` is writable for its length (the strings of the entry go there).
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(format!(
            "looking up group {group:?}: {}",
            io::Error::from_raw_os_error(rc)
        ));
    }
    if found.is_null() {
        return Err(format!("no group named {group:?}"));
    }
    Ok(grp.gr_gid)
}

impl Dc {
    /// Give this DC's region file (and its pool file) the group `group` (when given) and the
    /// mode `mode`: first the group, then the mode, so that a wider mode never applies to the
    /// creator's group on the way. `mode` must be at most 0777 and grant the owner read and
    /// write (else `BadConfig(EDVSBADVALUE)`). Changing the group needs the creator to be in
    /// it, or root.
    pub fn share(&self, group: Option<u32>, mode: u32) -> Result<(), DcError> {
        if mode & !0o777 != 0 || mode & 0o600 != 0o600 {
            return Err(DcError::BadConfig(crate::Errno::EDVSBADVALUE));
        }
        let pool = crate::pool::file::path_of(self.name());
        let mut files = vec![self.path().to_path_buf()];
        if self.has_pool() {
            files.push(pool);
        }
        for f in &files {
            set(f, group, mode).map_err(|source| DcError::Io {
                path: f.display().to_string(),
                source,
            })?;
        }
        Ok(())
    }
}

fn set(path: &Path, group: Option<u32>, mode: u32) -> io::Result<()> {
    if group.is_some() {
        std::os::unix::fs::chown(path, None, group)?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
