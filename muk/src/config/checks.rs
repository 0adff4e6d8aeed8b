//! The checks of the `[cluster]`, `[dc]` and `[[server]]` sections, each naming the line
//! of what it refuses.

use super::*;

/// `[cluster]` and `[dc]` agree: the same node, and a fixed DC id (every node must create the DC
/// with the same one). The proxy slot's nr.
pub(super) fn cluster_agrees(
    cluster: &NodeConfig,
    raw: &Spanned<RawDc>,
    dc: &DcSpec,
    at: &At<'_>,
) -> Result<i32, ConfigError> {
    if let Some(n) = &raw.get_ref().node
        && *n.get_ref() != i64::from(cluster.node)
    {
        return Err(at(
            n.span(),
            ConfigErrorKind::Cluster(format!(
                "node = {} but [dc] node = {}: both are this node's id (leave [dc] node out)",
                cluster.node,
                n.get_ref()
            )),
        ));
    }
    if dc.dcid.is_none() {
        return Err(at(
            raw.span(),
            ConfigErrorKind::Cluster(
                "needs [dc] dcid: every node creates the DC with the same id".into(),
            ),
        ));
    }
    Ok(cluster.proxy_nr(&dc.name, dc.tasks))
}

pub(super) fn dc_spec(
    raw: &RawDc,
    table: Range<usize>,
    default_node: u32,
    at: &At<'_>,
) -> Result<DcSpec, ConfigError> {
    let name = raw.name.get_ref();
    let bad_name = |why| {
        Err(at(
            raw.name.span(),
            ConfigErrorKind::DcName {
                name: name.clone(),
                why,
            },
        ))
    };
    if name.is_empty() {
        return bad_name("empty");
    }
    if name.len() > MAX_NAME {
        return bad_name("longer than 15 bytes");
    }
    // The same rule the region file's name follows; checked here to name the line.
    if name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad_name("not made of letters, digits, '.', '_' and '-' (not first '.')");
    }
    let node = match &raw.node {
        None => default_node,
        Some(n) => u32::try_from(*n.get_ref())
            .ok()
            .filter(|&v| v < NODES)
            .ok_or_else(|| at(n.span(), ConfigErrorKind::Node(*n.get_ref())))?,
    };
    let dcid = match &raw.dcid {
        None => None,
        Some(n) => Some(
            u32::try_from(*n.get_ref())
                .ok()
                .filter(|&v| v < DCS)
                .ok_or_else(|| at(n.span(), ConfigErrorKind::Dcid(*n.get_ref())))?,
        ),
    };
    let defaults = DcConfig::default();
    let value = |v: &Option<Spanned<i64>>, default: u32| {
        v.as_ref().map_or(default.into(), |s| *s.get_ref())
    };
    let (procs, tasks, sysprocs) = (
        value(&raw.procs, defaults.nr_procs),
        value(&raw.tasks, defaults.nr_tasks),
        value(&raw.sysprocs, defaults.nr_sysprocs),
    );
    let limits_err = || {
        let span = [&raw.procs, &raw.tasks, &raw.sysprocs]
            .into_iter()
            .flatten()
            .map(Spanned::span)
            .next()
            .unwrap_or_else(|| table.clone());
        at(
            span,
            ConfigErrorKind::Limits {
                procs,
                tasks,
                sysprocs,
            },
        )
    };
    let as_u32 = |v: i64| u32::try_from(v).map_err(|_| limits_err());
    let spec = DcSpec {
        name: name.clone(),
        node,
        dcid,
        procs: as_u32(procs)?,
        tasks: as_u32(tasks)?,
        sysprocs: as_u32(sysprocs)?,
        mode: match &raw.mode {
            None => defaults.mode,
            Some(m) => u32::try_from(*m.get_ref())
                .ok()
                .filter(|v| v & !0o777 == 0 && v & 0o600 == 0o600)
                .ok_or_else(|| at(m.span(), ConfigErrorKind::Mode(*m.get_ref())))?,
        },
        group: match &raw.group {
            None => None,
            Some(g) if g.get_ref().is_empty() => {
                return Err(at(g.span(), ConfigErrorKind::Group));
            }
            Some(g) => Some(g.get_ref().clone()),
        },
    };
    if spec.dc_config(0).validate().is_err() {
        return Err(limits_err());
    }
    Ok(spec)
}

pub(super) fn check_nr(
    name: &str,
    nr: &Spanned<i64>,
    dc: &DcSpec,
    at: &At<'_>,
) -> Result<i32, ConfigError> {
    let v = *nr.get_ref();
    if v == i64::from(HARDWARE) {
        return Err(at(
            nr.span(),
            ConfigErrorKind::HardwareNr { name: name.into() },
        ));
    }
    let range = dc.system_nrs();
    i32::try_from(v)
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            at(
                nr.span(),
                ConfigErrorKind::NrOutOfRange {
                    name: name.into(),
                    nr: v,
                    lo: range.start,
                    hi: range.end - 1,
                },
            )
        })
}

/// The storage settings of one entry: each key only for the server that takes it.
pub(super) fn storage_options(
    kind: ServerKind,
    s: &RawServer,
    at: &At<'_>,
) -> Result<ServerOptions, ConfigError> {
    let name = s.name.get_ref();
    let wrong = |span: Range<usize>, why: String| {
        at(
            span,
            ConfigErrorKind::Storage {
                name: name.clone(),
                why,
            },
        )
    };
    let mut opts = ServerOptions::default();
    let only = |key: &str, server: ServerKind| {
        format!(
            "{key} is a setting of {}, not of this server",
            server.name()
        )
    };
    if let Some(mib) = &s.memory_mib {
        if kind != ServerKind::Rdisk {
            return Err(wrong(mib.span(), only("memory_mib", ServerKind::Rdisk)));
        }
        let v = *mib.get_ref();
        let bytes = u64::try_from(v)
            .ok()
            .filter(|m| (1..=MAX_MEMORY_MIB).contains(m))
            .ok_or_else(|| {
                wrong(
                    mib.span(),
                    format!("memory_mib {v} is outside 1..={MAX_MEMORY_MIB}"),
                )
            })?;
        opts.disk = DiskSpec::Memory(bytes << 20);
    }
    if let Some(image) = &s.image {
        if kind != ServerKind::Rdisk {
            return Err(wrong(image.span(), only("image", ServerKind::Rdisk)));
        }
        if s.memory_mib.is_some() {
            return Err(wrong(
                image.span(),
                "give either image or memory_mib, not both".into(),
            ));
        }
        if image.get_ref().is_empty() {
            return Err(wrong(image.span(), "image is an empty path".into()));
        }
        opts.disk = DiskSpec::Image(image.get_ref().into());
    }
    if let Some(format) = &s.format {
        if kind != ServerKind::Fs {
            return Err(wrong(format.span(), only("format", ServerKind::Fs)));
        }
        opts.format = FormatPolicy::from_name(format.get_ref()).ok_or_else(|| {
            wrong(
                format.span(),
                format!(
                    "format {:?} is not one of never, if-blank, always",
                    format.get_ref()
                ),
            )
        })?;
    }
    let net = matches!(kind, ServerKind::Web | ServerKind::Is);
    if let Some(port) = &s.port {
        if !net {
            return Err(wrong(port.span(), only("port", ServerKind::Web)));
        }
        opts.port = Some(u16::try_from(*port.get_ref()).map_err(|_| {
            wrong(
                port.span(),
                format!("port {} is outside 0..=65535", port.get_ref()),
            )
        })?);
    }
    if let Some(addr) = &s.address {
        if !net {
            return Err(wrong(addr.span(), only("address", ServerKind::Web)));
        }
        opts.address = Some(addr.get_ref().parse().map_err(|_| {
            wrong(
                addr.span(),
                format!("address {:?} is not an IP address", addr.get_ref()),
            )
        })?);
    }
    if let Some(root) = &s.root {
        if kind != ServerKind::Web {
            return Err(wrong(root.span(), only("root", ServerKind::Web)));
        }
        if crate::storage::path::check(root.get_ref()).is_err() {
            return Err(wrong(
                root.span(),
                format!("root {:?} is not an absolute path", root.get_ref()),
            ));
        }
        opts.web_root = Some(root.get_ref().clone());
    }
    Ok(opts)
}

pub(super) fn check_stack(
    name: &str,
    kib: &Spanned<i64>,
    at: &At<'_>,
) -> Result<usize, ConfigError> {
    let min = MIN_STACK / 1024;
    usize::try_from(*kib.get_ref())
        .ok()
        .filter(|k| (min..=MAX_STACK_KIB).contains(k))
        .map(|k| k * 1024)
        .ok_or_else(|| {
            at(
                kib.span(),
                ConfigErrorKind::Stack {
                    name: name.into(),
                    kib: *kib.get_ref(),
                    min,
                    max: MAX_STACK_KIB,
                },
            )
        })
}
