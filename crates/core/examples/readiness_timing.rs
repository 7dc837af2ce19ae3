//! Time a full readiness recompute for an organisation that adopted every built-in pack:
//! `cargo run --release -p assay-core --example readiness_timing`. The target (issue 4) is
//! at most 10 ms per recompute; the real benchmark with ratios lives in `bench/`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use assay_core::ControlStatus;
use assay_core::catalogue::builtin;
use assay_core::readiness::{ControlState, ReadinessModel};

fn main() {
    let catalogue = builtin();
    let started = Instant::now();
    let model = ReadinessModel::all(catalogue);
    let built = started.elapsed();

    // A mixed posture, so every branch of the rule (and the action ranking) does work.
    let states: HashMap<String, ControlState> = catalogue
        .controls()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let state = match i % 5 {
                0 => ControlState::new(ControlStatus::Implemented),
                1 => ControlState::new(ControlStatus::InProgress),
                2 => ControlState::not_applicable("not used by this organisation"),
                3 => ControlState::new(ControlStatus::Implemented),
                _ => ControlState::new(ControlStatus::NotStarted),
            };
            (c.key.clone(), state)
        })
        .collect();

    let warm = model.compute(&states);
    let requirements: usize = warm.frameworks.iter().map(|f| f.requirements.len()).sum();
    let runs = 2_000u32;
    let started = Instant::now();
    for _ in 0..runs {
        black_box(model.compute(black_box(&states)));
    }
    let per = started.elapsed() / runs;
    println!(
        "model built in {built:?}; {} frameworks, {requirements} requirements, {} controls",
        warm.frameworks.len(),
        catalogue.controls().len()
    );
    for f in &warm.frameworks {
        println!("  {:<18} score {:?}", f.framework, f.score);
    }
    println!("overall score {:?}", warm.overall.score);
    println!("full recompute: {per:?} per run (mean of {runs}; target <= 10 ms)");
}
