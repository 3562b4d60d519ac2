//! Printing lists: aligned columns for people, `--json` for scripts.

use serde::Serialize;

/// Prints `items` as a JSON array, or as a table with `headers` and one row per item.
pub fn list<T: Serialize>(
    json: bool,
    items: &[T],
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) {
    if json {
        println!("{}", serde_json::to_string_pretty(items).expect("model types serialise to JSON"));
        return;
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let print = |cells: Vec<String>| {
        let line: Vec<String> =
            cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    };
    print(headers.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        print(r);
    }
}
