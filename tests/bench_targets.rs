//! `scripts/targets`, which turns runs of the benchmark harness into issue 7's verdicts, read
//! against tables laid out exactly as the harness's `report.py` prints them.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

/// One load scenario's row: target, scenario label, req/s, p99 ms, MB/s, notes.
struct Load {
    target: &'static str,
    label: &'static str,
    req_s: f64,
    p99_ms: f64,
    mb_s: Option<f64>,
    notes: &'static str,
}

/// A storm row: target, p99 ms, origin requests per key (none for the limit).
struct Storm {
    target: &'static str,
    p99_ms: f64,
    per_key: Option<&'static str>,
}

/// Thousands separated by commas, as Python's `{:,.Nf}`.
fn grouped(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let (whole, fraction) = text
        .split_once('.')
        .map_or((&*text, None), |(w, f)| (w, Some(f)));
    let mut out = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{out}.{fraction}"),
        None => out,
    }
}

/// The harness's table: a log line before it, the header, the rows, as `report.py` lays them out.
fn table(loads: &[Load], storms: &[Storm]) -> String {
    let mut text = String::from("[run.sh 22:04:35] building origin, limit, client (release)\n");
    let header = format!(
        "{:<10}| {:<9}| {:>9} {:>5} | {:>7} {:>7} | {:>7} | {:>6} | notes",
        "target", "scenario", "req/s", "ratio", "p50 ms", "p99 ms", "MB/s", "origin"
    );
    text += "ratio = target/limit (throughput: higher is better)\n";
    text += &format!("{header}\n{}\n", "-".repeat(header.len()));
    for row in loads {
        let limit = loads
            .iter()
            .find(|other| other.target == "limit" && other.label == row.label)
            .map_or(f64::NAN, |limit| limit.req_s);
        let mb_s = row.mb_s.map_or("-".to_owned(), |mb| grouped(mb, 0));
        text += &format!(
            "{:<10}| {:<9}| {:>9} {:5.2} | {:>7} {:>7} | {:>7} | {:>6} | {}\n",
            row.target,
            row.label,
            grouped(row.req_s, 0),
            row.req_s / limit,
            grouped(row.p99_ms / 2.0, 2),
            grouped(row.p99_ms, 2),
            mb_s,
            0,
            row.notes
        );
    }
    for storm in storms {
        let what = storm
            .per_key
            .map_or("fan-in floor, no origin".to_owned(), |per| {
                format!("origin reqs/key={per}")
            });
        text += &format!(
            "{:<10}| {:<9}| {:>3}x{} keys  | {:>7} {:>7} | max {:>5}ms | {}\n",
            storm.target,
            "c storm",
            200,
            5,
            grouped(storm.p99_ms - 1.0, 1),
            grouped(storm.p99_ms, 1),
            grouped(storm.p99_ms + 1.0, 0),
            what
        );
    }
    text
}

fn load(target: &'static str, label: &'static str, req_s: f64, p99_ms: f64) -> Load {
    Load {
        target,
        label,
        req_s,
        p99_ms,
        mb_s: None,
        notes: "reps 1.0k/1.0k/1.0k",
    }
}

fn large(target: &'static str, req_s: f64, mb_s: f64) -> Load {
    Load {
        mb_s: Some(mb_s),
        ..load(target, "d hot64k", req_s, 2.0)
    }
}

/// A run in which sidecache meets every target: hot 2.1x nginx and 0.85x the limit, 10k keys
/// 2.05x, 64 KiB 0.96x the limit, one origin request per key at 205 ms.
fn run_meeting_everything() -> (Vec<Load>, Vec<Storm>) {
    // Per target: hot req/s and p99, 10k req/s and p99, 64 KiB req/s and MB/s. The rows come
    // out in the harness's order: each target's hot, 10k and 64 KiB rows (indices 3t..3t+2).
    let figures = [
        (
            "candidate",
            110_500.0,
            0.70,
            102_500.0,
            0.80,
            40_000.0,
            2_784.0,
        ),
        ("limit", 130_000.0, 0.50, 127_000.0, 0.50, 44_000.0, 2_900.0),
        ("nginx", 52_600.0, 1.34, 50_000.0, 1.50, 34_000.0, 2_231.0),
        ("varnish", 39_000.0, 28.0, 38_000.0, 4.0, 24_500.0, 1_609.0),
    ];
    let loads = figures
        .into_iter()
        .flat_map(
            |(target, hot, hot_p99, keys, keys_p99, large_req_s, mb_s)| {
                [
                    load(target, "a hot1k", hot, hot_p99),
                    load(target, "b 10k", keys, keys_p99),
                    large(target, large_req_s, mb_s),
                ]
            },
        )
        .collect();
    let storm = |target, p99_ms, per_key| Storm {
        target,
        p99_ms,
        per_key,
    };
    let storms = vec![
        storm("candidate", 205.5, Some("1,1,1,1,1")),
        storm("limit", 11.8, None),
        storm("nginx", 505.7, Some("1,1,1,1,1")),
    ];
    (loads, storms)
}

/// Runs `scripts/targets` on logs holding `tables`.
fn targets(tables: &[String]) -> Output {
    let dir = support::TempDir::new("targets");
    let logs: Vec<PathBuf> = tables
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let path = dir.0.join(format!("run-{index}.log"));
            std::fs::write(&path, text).expect("write log");
            path
        })
        .collect();
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/targets"))
        .args(&logs)
        .output()
        .expect("scripts/targets runs (it needs python3)")
}

/// The verdict word printed on the line of the target named `name` in the first run.
fn verdict(output: &Output, name: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no line for {name:?} in:\n{stdout}"));
    ["NOT met", "not judged", "met"]
        .into_iter()
        .find(|word| line.trim_end().ends_with(word))
        .unwrap_or_else(|| panic!("no verdict on {line:?}"))
        .to_owned()
}

#[test]
fn a_run_meeting_every_target_is_met_throughout_and_exits_zero() {
    let (loads, storms) = run_meeting_everything();
    let output = targets(&[table(&loads, &storms)]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    for name in [
        "hot 1 KiB: >= 2.0x the better peer",
        "hot 1 KiB: >= 0.8x the limit",
        "hot 1 KiB: p99 no worse than nginx's",
        "10,000 keys: >= 2.0x the better peer",
        "hot 64 KiB: >= 0.95x the limit's MB/s",
        "storm: 1 origin request per key",
        "storm: p99 <= 230 ms",
    ] {
        assert_eq!(verdict(&output, name), "met", "{name}: {stdout}");
    }
    assert!(stdout.contains("2.101x nginx"), "{stdout}");
    assert!(stdout.contains("met in 1 of 1"), "{stdout}");
}

#[test]
fn a_ratio_just_below_its_target_is_not_met_even_where_two_decimals_would_round_it_up() {
    let (mut loads, storms) = run_meeting_everything();
    // Run 2 of 2026-12-04 night: 104,982 / 131,990 = 0.795 the limit, printed "0.80" by two
    // decimals but below 0.8; 2.019x nginx's 51,986.
    loads[0].req_s = 104_982.0;
    loads[3].req_s = 131_990.0;
    loads[6].req_s = 51_986.0;
    let output = targets(&[table(&loads, &storms)]);
    assert_eq!(verdict(&output, "hot 1 KiB: >= 0.8x the limit"), "NOT met");
    assert_eq!(
        verdict(&output, "hot 1 KiB: >= 2.0x the better peer"),
        "met"
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn the_better_peer_is_whichever_was_faster_in_that_run() {
    let (mut loads, storms) = run_meeting_everything();
    // Varnish faster than nginx over 10k keys: 102,500 / 55,000 = 1.86x, not met.
    loads[10].req_s = 55_000.0;
    let output = targets(&[table(&loads, &storms)]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        verdict(&output, "10,000 keys: >= 2.0x the better peer"),
        "NOT met"
    );
    assert!(stdout.contains("1.864x varnish"), "{stdout}");
}

#[test]
fn a_second_origin_request_for_a_key_or_a_slow_storm_fails_the_storm() {
    let (loads, mut storms) = run_meeting_everything();
    storms[0].per_key = Some("1,2,1,1,1");
    storms[0].p99_ms = 231.0;
    let output = targets(&[table(&loads, &storms)]);
    assert_eq!(
        verdict(&output, "storm: 1 origin request per key"),
        "NOT met"
    );
    assert_eq!(verdict(&output, "storm: p99 <= 230 ms"), "NOT met");
}

#[test]
fn a_run_without_peers_or_with_request_errors_is_not_judged() {
    let (loads, storms) = run_meeting_everything();
    let without_peers: Vec<Load> = loads
        .into_iter()
        .filter(|row| row.target == "candidate" || row.target == "limit")
        .collect();
    let output = targets(&[table(&without_peers, &storms)]);
    assert_eq!(
        verdict(&output, "hot 1 KiB: >= 2.0x the better peer"),
        "not judged"
    );
    assert_eq!(verdict(&output, "hot 1 KiB: >= 0.8x the limit"), "met");
    assert_eq!(output.status.code(), Some(1));

    let (mut loads, storms) = run_meeting_everything();
    loads[0].notes = "non2xx=3 sockerr=0; reps 1.0k/1.0k/1.0k";
    let output = targets(&[table(&loads, &storms)]);
    assert_eq!(
        verdict(&output, "hot 1 KiB: p99 no worse than nginx's"),
        "not judged"
    );

    let (mut loads, storms) = run_meeting_everything();
    loads[2].notes = "non2xx=12 sockerr=0; reps 1.0k/1.0k/1.0k";
    let output = targets(&[table(&loads, &storms)]);
    assert_eq!(
        verdict(&output, "hot 64 KiB: >= 0.95x the limit's MB/s"),
        "not judged"
    );
}

#[test]
fn runs_are_counted_apart_and_a_log_without_a_table_is_refused() {
    let (loads, storms) = run_meeting_everything();
    let (mut slow, _) = run_meeting_everything();
    slow[1].req_s = 90_000.0;
    let output = targets(&[table(&loads, &storms), table(&slow, &storms)]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout
        .lines()
        .skip_while(|line| !line.starts_with("over 2 run(s)"))
        .find(|line| line.contains("10,000 keys"))
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}"));
    assert!(summary.ends_with("met in 1 of 2"), "{summary}");
    assert_eq!(output.status.code(), Some(1));

    let output = targets(&["[run.sh 22:04:35] building origin\n".to_owned()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no harness table or bench-extra result")
    );
}

/// What `scripts/bench-extra million` prints (`WRK=0`: no hit loads, so no p99 lines).
fn million(entries: u64, resident: u64, p99s: Option<(f64, f64)>) -> String {
    let mut text = String::new();
    if let Some((p99_10k, _)) = p99s {
        text +=
            &format!("10k keys:   90094.75 req/s, hit p99 {p99_10k:.2} ms (medians of 3 runs)\n");
    }
    text += &format!("filling {entries} keys...\n");
    if let Some((p99_10k, p99_big)) = p99s {
        text += &format!(
            "{entries} keys: 71244.34 req/s, hit p99 {p99_big:.2} ms (medians of 3 runs; {:.2}x the 10k case)\n",
            p99_big / p99_10k
        );
    }
    let payload = entries * 1024;
    let idle = 9_236_480;
    text += &format!(
        "entries:    {entries}, weighed size {} bytes\n",
        resident - idle
    );
    text += &format!(
        "resident:   {resident} bytes ({idle} before the fill); payload {payload} bytes\n"
    );
    text += &format!(
        "ratio:      {:.2} x payload (resident), {:.2} x payload (resident minus idle)\n",
        resident as f64 / payload as f64,
        (resident - idle) as f64 / payload as f64
    );
    text
}

#[test]
fn a_million_entries_are_judged_on_resident_memory_and_the_p99_against_10k_keys() {
    // 2026-12-04 22:47: 1,809,068,032 bytes for 1,024,000,000 of bodies, p99 1.17 vs 0.88 ms.
    let output = targets(&[million(1_000_000, 1_809_068_032, Some((0.88, 1.17)))]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        verdict(&output, "1M entries: resident <= 1.3x the payload"),
        "NOT met"
    );
    assert!(stdout.contains("1.767x"), "{stdout}");
    assert_eq!(
        verdict(&output, "1M entries: hit p99 within 1.2x of 10k's"),
        "NOT met"
    );
    assert!(stdout.contains("1.330x"), "{stdout}");
    assert_eq!(output.status.code(), Some(1));

    // 1.27x the payload, and a p99 1.193x the 10k case (printed "1.19x").
    let output = targets(&[million(1_000_000, 1_300_000_000, Some((0.88, 1.05)))]);
    assert_eq!(
        verdict(&output, "1M entries: resident <= 1.3x the payload"),
        "met"
    );
    assert_eq!(
        verdict(&output, "1M entries: hit p99 within 1.2x of 10k's"),
        "met"
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn a_smaller_fill_is_not_judged_and_a_memory_only_run_has_no_p99_verdict() {
    let output = targets(&[million(1_000, 20_000_000, Some((0.88, 0.90)))]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        verdict(&output, "1M entries: resident <= 1.3x the payload"),
        "not judged"
    );
    assert!(!stdout.contains("hit p99 within"), "{stdout}");

    let output = targets(&[million(1_000_000, 1_809_068_032, None)]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        verdict(&output, "1M entries: resident <= 1.3x the payload"),
        "NOT met"
    );
    assert!(!stdout.contains("hit p99 within"), "{stdout}");
}

#[test]
fn tracing_is_judged_on_the_median_of_its_pairs() {
    let tracing = |ratios: &[f64]| {
        let mut text = String::new();
        for (round, ratio) in ratios.iter().enumerate() {
            let on = 100_000.0 * ratio;
            text += &format!(
                "round {}: tracing off 100000.00 req/s, on at 1% {on:.2} req/s ({ratio:.3}x)\n",
                round + 1
            );
        }
        let mut sorted = ratios.to_vec();
        sorted.sort_by(f64::total_cmp);
        text += &format!(
            "median ratio over {} rounds: {:.3}x\n",
            ratios.len(),
            sorted[(sorted.len() - 1) / 2]
        );
        text
    };
    let name = "tracing at 1 %: >= 0.95x the throughput";
    let output = targets(&[tracing(&[0.877, 0.956, 0.954, 0.946, 0.951])]);
    assert_eq!(verdict(&output, name), "met");
    let output = targets(&[tracing(&[0.877, 0.956, 0.949, 0.946, 0.951])]);
    assert_eq!(verdict(&output, name), "NOT met");
    assert!(String::from_utf8_lossy(&output.stdout).contains("0.949x"));
}
