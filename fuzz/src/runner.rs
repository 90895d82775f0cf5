//! A fuzzing campaign: seeds first, then mutated and random inputs until the budget is spent,
//! each run under `catch_unwind`; crashes (panics and broken invariants) are kept once per
//! kind, and saved when a folder is given.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::panic;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use crate::mutate::{mutate, random_bytes};
use crate::rng::Rng;
use crate::targets::{fingerprint, shape, Target};

/// Most inputs kept for mutation beyond the seeds (older ones are replaced at random).
const MAX_POOL: usize = 2048;

/// When a campaign stops: after `time`, after `executions`, whichever comes first.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    /// Wall-clock time.
    pub time: Option<Duration>,
    /// Inputs run (seeds included).
    pub executions: Option<u64>,
}

/// How a campaign runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Seed of the mutations: the same seed and corpus give the same inputs, in order.
    pub seed: u64,
    /// When to stop.
    pub budget: Budget,
    /// Where crashing inputs are saved, under a folder per target; `None` keeps them in the
    /// report only (the unit tests).
    pub crash_dir: Option<PathBuf>,
    /// An input still running after this long is a hang: it is saved and the process exits
    /// with status 3 (a hang cannot be unwound).
    pub hang_after: Option<Duration>,
    /// Writes every input to `<crash_dir>/<target>/current.bin` before running it, so that an
    /// input that aborts the process (a stack overflow) is left on disk. Slow: for replays.
    pub trace: bool,
}

/// How an input crashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashKind {
    /// Product code panicked.
    Panic,
    /// An invariant the target checks did not hold.
    Violation,
}

/// One kind of crash, with the first input that showed it.
#[derive(Debug, Clone)]
pub struct Crash {
    /// Panic or broken invariant.
    pub kind: CrashKind,
    /// The panic's location and message, or the invariant's sentence.
    pub message: String,
    /// The input.
    pub input: Vec<u8>,
    /// How many inputs showed this kind of crash.
    pub occurrences: u64,
    /// Where the input was saved.
    pub saved_to: Option<PathBuf>,
}

/// What a campaign did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target.
    pub target: Target,
    /// Inputs run.
    pub executions: u64,
    /// Time taken.
    pub elapsed: Duration,
    /// Distinct outcomes seen (see [`crate::targets::Outcome`]).
    pub outcomes: usize,
    /// Inputs in the mutation pool at the end.
    pub pool: usize,
    /// Distinct crashes.
    pub crashes: Vec<Crash>,
    /// A hash of every input run, in order: equal for two runs with the same seed, corpus
    /// and number of executions.
    pub digest: u64,
}

thread_local! {
    /// Whether this thread is running a fuzz input (its panics are recorded, not printed).
    static FUZZING: Cell<bool> = const { Cell::new(false) };
    /// The last panic of this thread while fuzzing.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once, a panic hook that records panics of fuzzing threads and leaves every other
/// thread's panics (other tests running in the same process) to the previous hook.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if FUZZING.with(Cell::get) {
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `target` on one input, turning a panic into a crash.
fn execute(target: Target, input: &[u8]) -> Result<Vec<u64>, (CrashKind, String)> {
    FUZZING.with(|f| f.set(true));
    let result = panic::catch_unwind(|| target.run(input));
    FUZZING.with(|f| f.set(false));
    match result {
        Ok(Ok(did)) => Ok(did),
        Ok(Err(violation)) => Err((CrashKind::Violation, violation.0)),
        Err(_) => {
            let message = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "panicked".into());
            Err((CrashKind::Panic, message))
        }
    }
}

fn save(dir: &Path, name: &str, input: &[u8], message: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{name}.bin"));
    std::fs::write(&path, input)?;
    std::fs::write(dir.join(format!("{name}.txt")), message)?;
    Ok(path)
}

/// Watches a campaign from another thread and ends the process when one input runs too long.
struct Watchdog {
    executions: Arc<AtomicU64>,
    current: Arc<Mutex<Vec<u8>>>,
    done: Arc<AtomicBool>,
}

impl Watchdog {
    fn start(hang_after: Duration, dir: Option<PathBuf>, target: Target) -> Watchdog {
        let watchdog = Watchdog {
            executions: Arc::default(),
            current: Arc::default(),
            done: Arc::default(),
        };
        let (executions, current, done) = (
            watchdog.executions.clone(),
            watchdog.current.clone(),
            watchdog.done.clone(),
        );
        std::thread::spawn(move || {
            let mut last = (u64::MAX, Instant::now());
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let seen = executions.load(Ordering::Relaxed);
                if seen != last.0 {
                    last = (seen, Instant::now());
                } else if last.1.elapsed() > hang_after {
                    let input = current.lock().map(|i| i.clone()).unwrap_or_default();
                    let message = format!("input ran for more than {hang_after:?}");
                    let saved = dir.as_ref().map(|d| {
                        let name = format!(
                            "hang-{:016x}",
                            fingerprint([&*String::from_utf8_lossy(&input)])
                        );
                        save(d, &name, &input, &message)
                    });
                    eprintln!(
                        "{}: HANG after {seen} executions: {message}; saved: {saved:?}",
                        target.name()
                    );
                    std::process::exit(3);
                }
            }
        });
        watchdog
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// Runs a campaign of `target` from `corpus`.
///
/// # Errors
/// When a crashing input cannot be saved.
pub fn run(target: Target, corpus: &[Vec<u8>], options: &Options) -> std::io::Result<Report> {
    install_panic_hook();
    let started = Instant::now();
    let target_dir = options.crash_dir.as_ref().map(|d| d.join(target.name()));
    let watchdog = options
        .hang_after
        .map(|after| Watchdog::start(after, target_dir.clone(), target));
    let mut rng = Rng::new(options.seed);
    let mut pool: Vec<Vec<u8>> = corpus.to_vec();
    if pool.is_empty() {
        pool.push(b"{}".to_vec());
    }
    let seeds = pool.len();
    let mut outcomes = HashSet::new();
    let mut crashes: Vec<Crash> = Vec::new();
    let mut executions = 0u64;
    let mut digest = 0u64;
    loop {
        let out_of_time = options.budget.time.is_some_and(|t| started.elapsed() >= t);
        let out_of_runs = options.budget.executions.is_some_and(|n| executions >= n);
        if out_of_time || out_of_runs {
            break;
        }
        let input = if (executions as usize) < seeds {
            pool[executions as usize].clone()
        } else if rng.one_in(64) {
            random_bytes(&mut rng)
        } else {
            let mut input = rng.pick(&pool).clone();
            mutate(&mut input, &mut rng, &pool);
            input
        };
        digest = fingerprint([&*format!("{digest:x}"), &*String::from_utf8_lossy(&input)]);
        if let Some(w) = &watchdog {
            if let Ok(mut current) = w.current.lock() {
                current.clone_from(&input);
            }
        }
        if options.trace {
            if let Some(dir) = &target_dir {
                std::fs::create_dir_all(dir)?;
                std::fs::write(dir.join("current.bin"), &input)?;
            }
        }
        match execute(target, &input) {
            Ok(did) => {
                // Every outcome is recorded (no short-circuit): the next input must not count as
                // new for something this one already did.
                let novel = did.iter().filter(|o| outcomes.insert(**o)).count() > 0;
                if novel && executions as usize >= seeds {
                    if pool.len() < seeds + MAX_POOL {
                        pool.push(input);
                    } else {
                        let replaced = seeds + rng.below(MAX_POOL);
                        pool[replaced] = input;
                    }
                }
            }
            Err((kind, message)) => {
                let key = shape(&message).to_owned();
                match crashes
                    .iter_mut()
                    .find(|c| c.kind == kind && shape(&c.message) == key)
                {
                    Some(known) => known.occurrences += 1,
                    None => {
                        let saved_to = match &target_dir {
                            Some(dir) => {
                                let name = format!(
                                    "crash-{:016x}",
                                    fingerprint([&*String::from_utf8_lossy(&input)])
                                );
                                Some(save(dir, &name, &input, &message)?)
                            }
                            None => None,
                        };
                        crashes.push(Crash {
                            kind,
                            message,
                            input,
                            occurrences: 1,
                            saved_to,
                        });
                    }
                }
            }
        }
        executions += 1;
        if let Some(w) = &watchdog {
            w.executions.store(executions, Ordering::Relaxed);
        }
    }
    Ok(Report {
        target,
        executions,
        elapsed: started.elapsed(),
        outcomes: outcomes.len(),
        pool: pool.len(),
        crashes,
        digest,
    })
}
