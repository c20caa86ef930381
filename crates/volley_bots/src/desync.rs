//! What differs between two peers' desync dumps (`volley-bots desync OURS
//! THEIRS`; bots write dumps with `--desync-dir DIR`, any game with
//! `RollbackPlugin::dump_desyncs`).
//!
//! ```no_run
//! let diff = volley_bots::desync::compare("a.vdsync".as_ref(), "b.vdsync".as_ref()).unwrap();
//! println!("{diff}");
//! ```

use std::path::Path;

use bevy_volley::rollback::{Diff, Dump};

/// Reads two dump files and compares them (an error names the file).
pub fn compare(ours: &Path, theirs: &Path) -> Result<Diff, String> {
    let read = |file: &Path| {
        let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        Dump::decode(&bytes).map_err(|e| format!("{}: {e}", file.display()))
    };
    read(ours)?.diff(&read(theirs)?).map_err(|e| e.to_string())
}
