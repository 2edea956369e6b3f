//! `switchyard plugin new`: scaffold a plugin folder from the templates in `templates/`.
//! (Placeholder until the templates land; see the helper task.)

use std::path::{Path, PathBuf};

use crate::plugins::PluginKind;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
}

pub fn scaffold(
    _lang: Lang,
    _kind: PluginKind,
    _name: &str,
    _dir: &Path,
) -> anyhow::Result<PathBuf> {
    anyhow::bail!("not yet")
}
