//! The benchmarks' `--name value` options, and a result table, printed
//! by the benchmark as it likes and written as JSON into `$VOLLEY_BENCH_OUT`
//! (set by `cargo xtask bench`, which turns the tables into
//! `target/bench/report.md`, `report.json` and SVG plots).

/// Which way a figure is better.
#[derive(Clone, Copy)]
pub enum Better {
    /// Smaller (times, bytes, CPU).
    Lower,
    /// Larger (rates).
    Higher,
}

/// One measured quantity across the table's columns.
pub struct Row {
    /// What it is, with its unit.
    pub name: String,
    /// One value per column.
    pub values: Vec<f64>,
    /// Which way is better.
    pub better: Better,
}

/// A benchmark's results: columns are the contenders (volley first, the
/// reference second when there is one).
pub struct Table {
    /// File name and section key (`signaling`, `datapath`, ...).
    pub section: &'static str,
    /// A sentence saying what was measured and how.
    pub title: String,
    /// The contenders.
    pub columns: Vec<String>,
    /// The figures.
    pub rows: Vec<Row>,
    /// Whether the first column over the second means something (volley
    /// vs a reference); not for tables of several volley cases.
    pub ratio: bool,
}

impl Table {
    /// A table with these columns.
    pub fn new(section: &'static str, title: impl Into<String>, columns: &[&str]) -> Self {
        Table {
            section,
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
            ratio: true,
        }
    }

    /// Adds a row.
    pub fn row(&mut self, name: impl Into<String>, better: Better, values: &[f64]) {
        self.rows.push(Row {
            name: name.into(),
            values: values.to_vec(),
            better,
        });
    }

    /// Writes `$VOLLEY_BENCH_OUT/<section>.json` when that is set.
    pub fn save(&self) {
        let Some(dir) = std::env::var_os("VOLLEY_BENCH_OUT") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "values": r.values,
                    "better": match r.better { Better::Lower => "lower", Better::Higher => "higher" },
                })
            })
            .collect();
        let json = serde_json::json!({
            "section": self.section,
            "title": self.title,
            "columns": self.columns,
            "rows": rows,
            "ratio": self.ratio,
        });
        let path = dir.join(format!("{}.json", self.section));
        if let Err(e) = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, format!("{json:#}\n")))
        {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
}

/// Writes `$VOLLEY_BENCH_OUT/<name>.json` with named series of values (for
/// line plots such as a latency CDF) when that is set.
pub fn save_series(name: &str, title: &str, series: &[(String, Vec<f64>)]) {
    let Some(dir) = std::env::var_os("VOLLEY_BENCH_OUT") else {
        return;
    };
    let series: Vec<serde_json::Value> = series
        .iter()
        .map(|(n, v)| serde_json::json!({ "name": n, "values": v }))
        .collect();
    let json = serde_json::json!({ "title": title, "series": series });
    let path = std::path::PathBuf::from(dir).join(format!("{name}.json"));
    if let Err(e) = std::fs::write(&path, format!("{json:#}\n")) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}

/// The `q` quantile (nearest rank) of samples, sorting them; NaN when
/// there are none.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len().max(1));
    v.get(rank - 1).copied().unwrap_or(f64::NAN)
}

/// A benchmark's `--name value` options (cargo's own `--bench` skipped).
pub struct Options(Vec<(String, String)>);

impl Options {
    /// Reads the command line; an option not in `known` stops the run.
    pub fn parse(known: &[&str]) -> Options {
        let mut pairs = Vec::new();
        let mut args = std::env::args().skip(1);
        while let Some(name) = args.next() {
            if name == "--bench" {
                continue;
            }
            let key = name.trim_start_matches("--").to_string();
            assert!(
                known.contains(&key.as_str()),
                "unknown option {name} (known: --{})",
                known.join(", --")
            );
            pairs.push((key, args.next().unwrap_or_default()));
        }
        Options(pairs)
    }

    /// The value of `--name`, or `default`; a value that does not parse stops the run.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.0.iter().rev().find(|(k, _)| k == name) {
            Some((_, v)) => v
                .parse()
                .unwrap_or_else(|_| panic!("--{name}: cannot read {v:?}")),
            None => default,
        }
    }
}
