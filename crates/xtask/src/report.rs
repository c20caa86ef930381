//! The benchmark report: `report.md`, `report.json` and one SVG per table
//! (see [`crate::svg`]), with the previous run beside.

use std::path::Path;

use crate::bench::{SECTIONS, git_commit, machine};
use crate::{read_json, root, svg, write};

/// report.md, report.json and the plots, from the benchmarks' tables.
pub(crate) fn compose_report(raw: &Path, out: &Path) -> Result<String, String> {
    let mut tables = Vec::new();
    for section in SECTIONS {
        let path = raw.join(format!("{section}.json"));
        if path.exists() {
            tables.push(read_json(&path)?);
        }
    }
    let previous = read_json(&out.join("previous.json")).ok();
    let before = |section: &str, row: &str| -> Option<f64> {
        previous.as_ref()?["tables"]
            .as_array()?
            .iter()
            .find(|t| t["section"] == section)?["rows"]
            .as_array()?
            .iter()
            .find(|r| r["name"] == row)?["values"][0]
            .as_f64()
    };
    let machine = machine();
    let commit = git_commit();
    let mut md = format!(
        "# volley benchmark report\n\nCommit `{commit}` on {} ({} cores, {} GiB). Reproduce with `cargo xtask bench`.\nRatios are the first column over the second (volley over the reference), measured in the same run.\n",
        machine["cpu"].as_str().unwrap_or_default(),
        machine["cores"],
        machine["memory_gib"]
    );
    let docs = root().join("docs").join("bench");
    std::fs::create_dir_all(&docs).map_err(|e| format!("{}: {e}", docs.display()))?;
    for table in &tables {
        let section = table["section"].as_str().unwrap_or_default();
        let columns: Vec<&str> = table["columns"]
            .as_array()
            .map(|c| c.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        md += &format!(
            "\n## {section}\n\n{}\n\n",
            table["title"].as_str().unwrap_or_default()
        );
        let ratio = table["ratio"].as_bool().unwrap_or(true) && columns.len() >= 2;
        md += &format!("| | {} |", columns.join(" | "));
        if ratio {
            md += &format!(" {}/{} |", columns[0], columns[1]);
        }
        md += " previous run (first column) |\n|---|";
        md += &"---:|".repeat(columns.len() + usize::from(ratio) + 1);
        md += "\n";
        for row in table["rows"].as_array().into_iter().flatten() {
            let name = row["name"].as_str().unwrap_or_default();
            let values = crate::svg::values(row);
            md += &format!("| {name} |");
            for i in 0..columns.len() {
                md += &format!(" {} |", values.get(i).map_or("–".into(), |v| figure(*v)));
            }
            if ratio && values.len() >= 2 && values[0].is_finite() && values[1].is_finite() {
                md += &format!(" {:.2}× |", values[0] / values[1]);
            }
            md += &format!(" {} |\n", before(section, name).map_or("–".into(), figure));
        }
        let picture = svg::plot(table);
        let name = format!("{section}.svg");
        write(&out.join(&name), &picture)?;
        write(&docs.join(&name), &picture)?;
        md += &format!("\n![{section}](../../docs/bench/{name})\n");
    }
    let cdf = raw.join("latency_cdf.json");
    if cdf.exists() {
        let series = read_json(&cdf)?;
        let picture = svg::cdf_plot(&series);
        write(&out.join("latency_cdf.svg"), &picture)?;
        write(&docs.join("latency_cdf.svg"), &picture)?;
        md += &format!(
            "\n## latency CDF\n\n{}\n\n![latency CDF](../../docs/bench/latency_cdf.svg)\n",
            series["title"].as_str().unwrap_or_default()
        );
    }
    write(&out.join("report.md"), &md)?;
    let json = serde_json::json!({ "commit": commit, "machine": machine, "tables": tables });
    write(&out.join("report.json"), &format!("{json:#}\n"))?;
    Ok(md)
}
pub(crate) fn figure(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
