//! The `[isolate]` section: a host network interface for `muk2 run --isolate`.

use super::*;

/// The `[isolate]` section: a network interface of the host to move into the isolated
/// unikernel's network namespace (which otherwise has only its own loopback).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsolateSpec {
    /// The interface's name on the host (1..=15 bytes, no `/`, `:` or white space).
    pub interface: String,
    /// Its IPv4 address and prefix length, set inside; `None`: the interface is only brought
    /// up (its addresses are someone else's business).
    pub address: Option<InterfaceAddress>,
}

/// An IPv4 address with its prefix length (`10.9.0.2/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceAddress {
    /// The address.
    pub ip: Ipv4Addr,
    /// The prefix length, 1..=32.
    pub prefix: u8,
}

impl InterfaceAddress {
    /// The netmask of the prefix (`/24`: 255.255.255.0).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(self.prefix))
                .unwrap_or(0),
        )
    }
}

impl std::fmt::Display for InterfaceAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

/// Longest interface name the kernel takes (`IFNAMSIZ` less its NUL).
pub const MAX_INTERFACE_NAME: usize = 15;

/// The `[isolate]` section: a name the kernel could give an interface, and an IPv4 address with
/// its prefix.
pub(super) fn isolate_spec(raw: &RawIsolate, at: &At<'_>) -> Result<IsolateSpec, ConfigError> {
    let name = raw.interface.get_ref();
    let bad = |span: Range<usize>, why: String| at(span, ConfigErrorKind::Isolate(why));
    if name.is_empty()
        || name.len() > MAX_INTERFACE_NAME
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(bad(
            raw.interface.span(),
            format!(
                "interface {name:?} is not an interface name (1..={MAX_INTERFACE_NAME} bytes, \
                 no '/', ':' or white space)"
            ),
        ));
    }
    let address = match &raw.address {
        None => None,
        Some(raw_addr) => {
            let text = raw_addr.get_ref();
            let parsed = text.split_once('/').and_then(|(ip, prefix)| {
                let ip: Ipv4Addr = ip.parse().ok()?;
                let prefix: u8 = prefix.parse().ok().filter(|p| (1..=32).contains(p))?;
                Some(InterfaceAddress { ip, prefix })
            });
            let a = parsed.ok_or_else(|| {
                bad(
                    raw_addr.span(),
                    format!(
                        "address {text:?} is not an IPv4 address with its prefix length \
                         (e.g. \"10.9.0.2/24\", prefix 1..=32)"
                    ),
                )
            })?;
            if a.ip.is_unspecified() || a.ip.is_loopback() || a.ip.is_multicast() {
                return Err(bad(
                    raw_addr.span(),
                    format!("address {text:?} cannot be an interface's own address"),
                ));
            }
            Some(a)
        }
    };
    Ok(IsolateSpec {
        interface: name.clone(),
        address,
    })
}
