//! The config as TOML gives it, before any check (serde's view of the file).

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) runner: RawRunner,
    pub(super) dc: Spanned<RawDc>,
    #[serde(default)]
    pub(super) server: Vec<RawServer>,
    #[serde(default)]
    pub(super) cluster: Option<Spanned<NodeSection>>,
    #[serde(default)]
    pub(super) isolate: Option<RawIsolate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIsolate {
    pub(super) interface: Spanned<String>,
    #[serde(default)]
    pub(super) address: Option<Spanned<String>>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawRunner {
    #[default]
    Coroutines,
    Threads,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDc {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) node: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) dcid: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) procs: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) tasks: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) sysprocs: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) mode: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) group: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) nr: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) stack_kib: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) memory_mib: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) image: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) format: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) port: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) address: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) root: Option<Spanned<String>>,
}
