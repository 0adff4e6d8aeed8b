#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

fn err(text: &str) -> ConfigError {
    Config::parse(text).expect_err("config should be refused")
}

const DC: &str = "[dc]\nname = \"t\"\n";

#[test]
fn default_config_hosts_every_server() {
    let c = Config::default_config().unwrap();
    assert_eq!(c.runner, Runner::Coroutines);
    assert_eq!(c.dc.name, "muk2");
    assert_eq!(c.dc.node, 0);
    let kinds: Vec<_> = c.servers.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, ServerKind::ALL.to_vec());
    assert!(c.external().is_empty());
    let nrs: Vec<_> = c.servers.iter().map(|s| s.nr).collect();
    assert_eq!(nrs, vec![-2, 0, 20, 3, 1, 14, 22, 8]);
    assert_eq!(c.servers[3].options.disk, DiskSpec::Memory(32 << 20));
    assert_eq!(c.servers[4].options.format, FormatPolicy::IfBlank);
    assert_eq!(c.servers[4].options.below_nr, Some(3));
    assert_eq!(c.servers[5].options.below_nr, Some(1));
}

#[test]
fn full_config_is_read() {
    let c = Config::parse(
        "runner = \"threads\"\n[dc]\nname = \"DC3\"\nnode = 3\ndcid = 7\nprocs = 100\n\
         tasks = 10\nsysprocs = 40\n[[server]]\nname = \"pm\"\nnr = 5\nstack_kib = 64\n\
         [[server]]\nname = \"systask\"\n",
    )
    .unwrap();
    assert_eq!(c.runner, Runner::Threads);
    assert_eq!(
        c.dc,
        DcSpec {
            name: "DC3".into(),
            node: 3,
            dcid: Some(7),
            procs: 100,
            tasks: 10,
            sysprocs: 40,
            mode: 0o600,
            group: None,
        }
    );
    assert_eq!(
        c.servers,
        vec![
            ServerSpec {
                kind: ServerKind::Pm,
                nr: 5,
                stack_size: 64 * 1024,
                options: ServerOptions::default(),
            },
            // SYSTASK of node 3.
            ServerSpec {
                kind: ServerKind::Systask,
                nr: -5,
                stack_size: DEFAULT_STACK,
                options: ServerOptions::default(),
            },
        ]
    );
    assert_eq!(
        c.external(),
        vec![
            ServerKind::Echo,
            ServerKind::Rdisk,
            ServerKind::Fs,
            ServerKind::Ftp
        ]
    );
    assert_eq!(c.dc.dc_config(7).validate(), Ok(()));
}

#[test]
fn unknown_server() {
    let e = err(&format!("{DC}[[server]]\nname = \"nfs\"\n"));
    assert_eq!(e.line, Some(4));
    assert!(matches!(e.kind, ConfigErrorKind::UnknownServer { ref name, .. } if name == "nfs"));
    assert!(
        e.to_string()
            .contains("known: systask, pm, echo, rdisk, fs, ftp"),
        "{e}"
    );
}

#[test]
fn mode_and_group_share_the_dc() {
    let c = Config::parse(
        "[dc]\nname = \"S\"\nmode = 0o660\ngroup = \"m3\"\n[[server]]\nname = \"pm\"\n",
    )
    .unwrap();
    assert_eq!((c.dc.mode, c.dc.group.as_deref()), (0o660, Some("m3")));
    // The files are made 0600 and get the mode once they have the group.
    assert_eq!(c.dc.dc_config(0).mode, 0o600);
    let c = Config::parse("[dc]\nname = \"S\"\nmode = 0o640\n[[server]]\nname = \"pm\"\n").unwrap();
    assert_eq!(c.dc.dc_config(0).mode, 0o640);
    for (bad, line) in [
        ("mode = 0o1660", 3),
        ("mode = 0o460", 3),
        ("group = \"\"", 3),
    ] {
        let e = err(&format!(
            "[dc]\nname = \"S\"\n{bad}\n[[server]]\nname = \"pm\"\n"
        ));
        assert_eq!(e.line, Some(line), "{bad}: {e}");
        assert!(
            matches!(e.kind, ConfigErrorKind::Mode(_) | ConfigErrorKind::Group),
            "{bad}: {e}"
        );
    }
}

#[test]
fn unknown_keys() {
    let e = err(&format!("{DC}[[server]]\nname = \"pm\"\nstack = 64\n"));
    assert_eq!(e.line, Some(5));
    assert!(e.to_string().contains("unknown field `stack`"), "{e}");
    let e = err("[dc]\nname = \"t\"\nnodes = 1\n[[server]]\nname = \"pm\"\n");
    assert_eq!(e.line, Some(3));
    assert!(e.to_string().contains("unknown field `nodes`"), "{e}");
    let e = err(&format!("color = 1\n{DC}[[server]]\nname = \"pm\"\n"));
    assert_eq!(e.line, Some(1));
    assert!(e.to_string().contains("unknown field `color`"), "{e}");
}

#[test]
fn syntax_and_types() {
    let e = err("[dc\nname = 1\n");
    assert_eq!(e.line, Some(1));
    assert!(matches!(e.kind, ConfigErrorKind::Syntax(_)));
    let e = err("[dc]\nname = 1\n");
    assert_eq!(e.line, Some(2));
    let e = err("[[server]]\nname = \"pm\"\n");
    assert!(e.to_string().contains("missing field `dc`"), "{e}");
    let e = err(&format!(
        "runner = \"fibers\"\n{DC}[[server]]\nname = \"pm\"\n"
    ));
    assert_eq!(e.line, Some(1));
    assert!(e.to_string().contains("fibers"), "{e}");
}

#[test]
fn duplicate_server() {
    let e = err(&format!(
        "{DC}[[server]]\nname = \"pm\"\n[[server]]\nname = \"pm\"\nnr = 3\n"
    ));
    assert_eq!(e.line, Some(6));
    assert_eq!(
        e.kind,
        ConfigErrorKind::DuplicateServer {
            name: "pm".into(),
            first_line: 4
        }
    );
}

#[test]
fn duplicate_nr() {
    let e = err(&format!(
        "{DC}[[server]]\nname = \"pm\"\n[[server]]\nname = \"echo\"\nnr = 0\n"
    ));
    assert_eq!(e.line, Some(7));
    assert_eq!(
        e.kind,
        ConfigErrorKind::DuplicateNr {
            nr: 0,
            first: "pm".into(),
            second: "echo".into()
        }
    );
}

#[test]
fn nr_outside_the_table() {
    // The default DC: tasks -34..-1, system processes up to nr 29.
    for (nr, line) in [("30", 5), ("-35", 5), ("4000", 5), ("99999999999", 5)] {
        let e = err(&format!("{DC}[[server]]\nname = \"echo\"\nnr = {nr}\n"));
        assert_eq!(e.line, Some(line), "{nr}");
        assert!(
            matches!(
                e.kind,
                ConfigErrorKind::NrOutOfRange {
                    lo: -34,
                    hi: 29,
                    ..
                }
            ),
            "{nr}: {e}"
        );
    }
    let e = err(&format!("{DC}[[server]]\nname = \"echo\"\nnr = -1\n"));
    assert_eq!(
        e.kind,
        ConfigErrorKind::HardwareNr {
            name: "echo".into()
        }
    );
    // A smaller DC moves the bound.
    let e = err("[dc]\nname = \"t\"\ntasks = 4\nsysprocs = 8\n[[server]]\nname = \"pm\"\nnr = 4\n");
    assert!(
        matches!(e.kind, ConfigErrorKind::NrOutOfRange { lo: -4, hi: 3, .. }),
        "{e}"
    );
    // SYSTASK of node 33 would be -35: the node is refused first.
    let e = err("[dc]\nname = \"t\"\nnode = 33\n[[server]]\nname = \"systask\"\n");
    assert_eq!(e.kind, ConfigErrorKind::Node(33));
}

#[test]
fn node_out_of_range() {
    for node in ["32", "-1", "1000"] {
        let e = err(&format!(
            "[dc]\nname = \"t\"\nnode = {node}\n[[server]]\nname = \"pm\"\n"
        ));
        assert_eq!(e.line, Some(3));
        assert!(matches!(e.kind, ConfigErrorKind::Node(_)), "{e}");
    }
    let e = err("[dc]\nname = \"t\"\ndcid = 32\n[[server]]\nname = \"pm\"\n");
    assert_eq!(e.kind, ConfigErrorKind::Dcid(32));
}

#[test]
fn stack_bounds() {
    let small = err(&format!("{DC}[[server]]\nname = \"pm\"\nstack_kib = 8\n"));
    assert_eq!(small.line, Some(5));
    assert!(matches!(small.kind, ConfigErrorKind::Stack { kib: 8, .. }));
    assert!(small.to_string().contains("16..=65536"), "{small}");
    let huge = err(&format!(
        "{DC}[[server]]\nname = \"pm\"\nstack_kib = 10000000\n"
    ));
    assert!(matches!(huge.kind, ConfigErrorKind::Stack { .. }));
    let negative = err(&format!("{DC}[[server]]\nname = \"pm\"\nstack_kib = -4\n"));
    assert!(matches!(negative.kind, ConfigErrorKind::Stack { .. }));
    let ok = Config::parse(&format!("{DC}[[server]]\nname = \"pm\"\nstack_kib = 16\n"));
    assert_eq!(ok.unwrap().servers[0].stack_size, MIN_STACK);
}

#[test]
fn dc_name() {
    let e = err("[dc]\nname = \"\"\n[[server]]\nname = \"pm\"\n");
    assert_eq!(e.line, Some(2));
    assert!(matches!(
        e.kind,
        ConfigErrorKind::DcName { why: "empty", .. }
    ));
    let e = err("[dc]\nname = \"a-name-of-16-byte\"\n[[server]]\nname = \"pm\"\n");
    assert!(matches!(e.kind, ConfigErrorKind::DcName { .. }), "{e}");
    let e = err("[dc]\nname = \"a/b\"\n[[server]]\nname = \"pm\"\n");
    assert!(matches!(e.kind, ConfigErrorKind::DcName { .. }), "{e}");
}

#[test]
fn limits_and_empty() {
    let e = err("[dc]\nname = \"t\"\ntasks = 40\n[[server]]\nname = \"pm\"\n");
    assert_eq!(e.line, Some(3));
    assert!(
        matches!(e.kind, ConfigErrorKind::Limits { tasks: 40, .. }),
        "{e}"
    );
    let e = err("[dc]\nname = \"t\"\nprocs = -3\n[[server]]\nname = \"pm\"\n");
    assert!(
        matches!(e.kind, ConfigErrorKind::Limits { procs: -3, .. }),
        "{e}"
    );
    let e = err(DC);
    assert_eq!(e.kind, ConfigErrorKind::NoServers);
}

#[test]
fn storage_settings() {
    let c = Config::parse(&format!(
        "{DC}[[server]]\nname = \"rdisk\"\nnr = 5\nimage = \"/tmp/x.img\"\n\
         [[server]]\nname = \"fs\"\nformat = \"never\"\n[[server]]\nname = \"ftp\"\n"
    ))
    .unwrap();
    assert_eq!(
        c.servers[0].options.disk,
        DiskSpec::Image("/tmp/x.img".into())
    );
    assert_eq!(c.servers[1].options.format, FormatPolicy::Never);
    assert_eq!(c.servers[1].options.below_nr, Some(5));
    assert_eq!(c.servers[2].options.below_nr, Some(1));
    for (text, line, want) in [
        (
            "name = \"pm\"\nmemory_mib = 4\n",
            5,
            "memory_mib is a setting of rdisk",
        ),
        ("name = \"rdisk\"\nmemory_mib = 0\n", 5, "outside 1..=16384"),
        (
            "name = \"rdisk\"\nmemory_mib = 4\nimage = \"a\"\n",
            6,
            "not both",
        ),
        (
            "name = \"echo\"\nformat = \"never\"\n",
            5,
            "format is a setting of fs",
        ),
        (
            "name = \"fs\"\nformat = \"sometimes\"\n",
            5,
            "not one of never",
        ),
    ] {
        let e = err(&format!("{DC}[[server]]\n{text}"));
        assert_eq!(e.line, Some(line), "{text}: {e}");
        assert!(e.to_string().contains(want), "{text}: {e}");
    }
}

#[test]
fn relative_image_is_the_config_files() {
    let dir = std::env::temp_dir().join(format!("muk-config-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let disk_of = |image: &str| {
        let text = format!("{DC}[[server]]\nname = \"rdisk\"\nimage = \"{image}\"\n");
        let file = dir.join("muk.toml");
        std::fs::write(&file, &text).unwrap();
        let loaded = Config::load(&file).unwrap();
        let parsed = Config::parse(&text).unwrap();
        (
            loaded.servers[0].options.disk.clone(),
            parsed.servers[0].options.disk.clone(),
        )
    };
    let relative = disk_of("disks/a.img");
    let absolute = disk_of("/abs/b.img");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(relative.0, DiskSpec::Image(dir.join("disks/a.img")));
    assert_eq!(absolute.0, DiskSpec::Image("/abs/b.img".into()));
    // Without a file, the path stays as written (the working directory's).
    assert_eq!(relative.1, DiskSpec::Image("disks/a.img".into()));
}

const CLUSTER: &str = "[dc]\nname = \"C\"\ndcid = 4\n[[server]]\nname = \"rdisk\"\n\
                       [cluster]\nnode = 1\nlisten = \"127.0.0.1:7001\"\n\
                       [[cluster.peer]]\nnode = 0\naddress = \"127.0.0.1:7000\"\n";

#[test]
fn cluster_section_names_the_node_and_its_peers() {
    let c = Config::parse(CLUSTER).unwrap();
    let n = c.cluster.as_ref().unwrap();
    assert_eq!((n.node, n.listen.port()), (1, 7001));
    assert_eq!(n.dcs, ["C"]);
    assert_eq!((n.peers[0].node, n.peers[0].address.port()), (0, 7000));
    // `[dc] node` left out: the section's.
    assert_eq!(c.dc.node, 1);
    // SYSTASK of node 1 then.
    let c = Config::parse(&CLUSTER.replace("\"rdisk\"", "\"systask\"")).unwrap();
    assert_eq!(c.servers[0].nr, -3);
    let c = Config::parse(&CLUSTER.replace("dcid = 4", "dcid = 4\nnode = 1")).unwrap();
    assert_eq!(c.dc.node, 1);
    assert_eq!(Config::parse(DC_PM).unwrap().cluster, None);
}

/// The commented-out example of the default config from line `start` to the end of its
/// comment block, uncommented.
fn default_example(start: &str) -> String {
    let at = DEFAULT_TOML.find(start).unwrap();
    DEFAULT_TOML[at..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim_start())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_default_configs_cluster_example_parses() {
    let example = default_example("# [cluster]");
    let c = Config::parse(&format!(
        "{DC}dcid = 0\n[[server]]\nname = \"pm\"\n{example}"
    ))
    .unwrap();
    let n = c.cluster.unwrap();
    assert_eq!((n.node, n.peers.len()), (0, 1));
}

#[test]
fn the_default_configs_isolate_example_parses() {
    let example = default_example("# [isolate]");
    let c = Config::parse(&format!("{DEFAULT_TOML}{example}\n")).unwrap();
    let i = c.isolate.unwrap();
    assert_eq!(i.interface, "veth-m3");
    assert_eq!(
        i.address.map(|a| a.to_string()).as_deref(),
        Some("10.9.0.2/24")
    );
}

const DC_PM: &str = "[dc]\nname = \"t\"\n[[server]]\nname = \"pm\"\n";

#[test]
fn a_bad_cluster_section_is_named() {
    for (text, line, want) in [
        (
            CLUSTER.replace("listen = \"127.0.0.1:7001\"", "listen = \"nowhere\""),
            6,
            "[cluster] listen = \"nowhere\": not HOST:PORT",
        ),
        (
            CLUSTER.replace("node = 0", "node = 1"),
            6,
            "[cluster] [[cluster.peer]] node = 1: that is this node's own id",
        ),
        (
            CLUSTER.replace("node = 1", "node = 40"),
            6,
            "[cluster] node = 40: a node id is 0..32",
        ),
        (
            CLUSTER.replace("dcid = 4", "dcid = 4\nnode = 2"),
            4,
            "[cluster] node = 1 but [dc] node = 2",
        ),
        (
            CLUSTER.replace("dcid = 4\n", ""),
            1,
            "[cluster] needs [dc] dcid",
        ),
        (
            CLUSTER.replace("\"rdisk\"", "\"rdisk\"\nnr = -34"),
            6,
            "[cluster] needs nr -34 (the DC's lowest task slot) for the node daemon's proxy, \
             but server \"rdisk\" uses it",
        ),
        (
            CLUSTER.replace("listen =", "lisen ="),
            8,
            "unknown field `lisen`",
        ),
        (
            CLUSTER.replace("address =", "addr ="),
            11,
            "unknown field `addr`",
        ),
        (
            CLUSTER.replace("listen = \"127.0.0.1:7001\"\n", ""),
            6,
            "missing field `listen`",
        ),
    ] {
        let e = err(&text);
        assert!(e.to_string().contains(want), "{want:?} not in {e}");
        assert_eq!(e.line, Some(line), "{want}: {e}");
    }
}

#[test]
fn isolate_section_names_an_interface_and_web_and_is_listen_on_it() {
    let net = "[[server]]\nname = \"web\"\n[[server]]\nname = \"is\"\n\
               address = \"0.0.0.0\"\n";
    let c = Config::parse(&format!(
        "{DC}{net}[isolate]\ninterface = \"veth-m3\"\naddress = \"10.9.0.2/24\"\n"
    ))
    .unwrap();
    let a = InterfaceAddress {
        ip: Ipv4Addr::new(10, 9, 0, 2),
        prefix: 24,
    };
    assert_eq!(
        c.isolate,
        Some(IsolateSpec {
            interface: "veth-m3".into(),
            address: Some(a),
        })
    );
    assert_eq!(a.netmask(), Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(a.to_string(), "10.9.0.2/24");
    // Web had no address: the interface's. IS said its own: kept.
    assert_eq!(c.servers[0].options.address, Some(IpAddr::V4(a.ip)));
    assert_eq!(
        c.servers[1].options.address,
        Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    );
    // Without an address the interface is only moved; web keeps its default.
    let c = Config::parse(&format!("{DC}{net}[isolate]\ninterface = \"eth1\"\n")).unwrap();
    assert_eq!(c.isolate.as_ref().map(|i| i.address), Some(None));
    assert_eq!(c.servers[0].options.address, None);
    assert_eq!(Config::parse(&format!("{DC}{net}")).unwrap().isolate, None);
    let masks = [
        (1, [128, 0, 0, 0]),
        (30, [255, 255, 255, 252]),
        (32, [255; 4]),
    ];
    for (prefix, mask) in masks {
        let a = InterfaceAddress { ip: a.ip, prefix };
        assert_eq!(a.netmask(), Ipv4Addr::from(mask), "/{prefix}");
    }
}

#[test]
fn a_bad_isolate_section_is_named() {
    let pm = "[[server]]\nname = \"pm\"\n";
    for (section, want) in [
        (
            "interface = \"\"",
            "interface \"\" is not an interface name",
        ),
        (
            "interface = \"a-very-long-name0\"",
            "is not an interface name (1..=15",
        ),
        ("interface = \"a/b\"", "interface \"a/b\" is not"),
        ("interface = \"eth0:1\"", "interface \"eth0:1\" is not"),
        (
            "interface = \"x\"\naddress = \"10.9.0.2\"",
            "with its prefix length",
        ),
        (
            "interface = \"x\"\naddress = \"10.9.0.2/33\"",
            "\"10.9.0.2/33\" is not",
        ),
        (
            "interface = \"x\"\naddress = \"10.9.0.2/0\"",
            "\"10.9.0.2/0\" is not",
        ),
        (
            "interface = \"x\"\naddress = \"fd00::2/64\"",
            "is not an IPv4 address",
        ),
        (
            "interface = \"x\"\naddress = \"127.0.0.2/8\"",
            "cannot be an interface's",
        ),
        (
            "interface = \"x\"\naddress = \"0.0.0.0/8\"",
            "cannot be an interface's",
        ),
        ("interface = \"x\"\nmtu = 1500", "unknown field `mtu`"),
        ("address = \"10.9.0.2/24\"", "missing field `interface`"),
    ] {
        let e = err(&format!("{DC}{pm}[isolate]\n{section}\n"));
        assert!(e.to_string().contains(want), "{want:?} not in {e}");
        assert!(e.line.is_some_and(|l| l >= 5), "{want}: {e}");
    }
}

#[test]
fn missing_file() {
    let e = Config::load(Path::new("/nonexistent/muk.toml")).unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::Read { .. }));
    assert!(e.to_string().contains("/nonexistent/muk.toml"), "{e}");
}
