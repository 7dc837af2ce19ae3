//! Where bookkeeping runs: writing audit batches and the AI usage ledger is real work (hash
//! chains, multi-row inserts, and on SQLite the engine itself), but nobody waits for it.
//! On a small machine it shares cores with request handling, and every few milliseconds a
//! batch that runs on a request worker (or beside it at the same priority) is a few
//! milliseconds that requests queue behind: that, not the mean cost, is what the p99 of a
//! busy node sees.
//!
//! [`Background`] is one OS thread of its own running a current-thread Tokio runtime. With
//! [`BackgroundPriority::Idle`] (the default) the thread is scheduled `SCHED_IDLE` on Linux:
//! any request thread that becomes runnable preempts it at once, and it uses the CPU time
//! requests leave. Threads it starts inherit the policy — so a SQLite pool opened from it
//! runs its engine threads at the same priority (open such pools with [`Background::run`]).
//! On an idle or busy CPU it runs at full speed in the time requests leave; on a CPU
//! saturated for seconds it gets only a small share, so its [`BatchQueue`]s fill — and
//! producers that can wait call [`BatchQueue::wait_for_room`] first, which holds them while
//! a queue is more than half full: requests slow down, nothing is dropped.
//!
//! Tasks spawned on it must only use I/O resources created on it (a pool opened elsewhere
//! would need the other runtime's driver to wake it, and the reverse would make requests
//! wait for this thread).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

/// How the bookkeeping thread is scheduled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackgroundPriority {
    /// `SCHED_IDLE` on Linux: runs when request threads do not need the CPU (elsewhere the
    /// same as `normal`).
    #[default]
    Idle,
    /// The same scheduling as request threads (a dedicated thread, nothing more).
    Normal,
}

/// A runtime for work off the request path. Cheap to clone; the thread stops (dropping
/// the tasks still on it) when the last clone is dropped.
#[derive(Clone)]
pub struct Background {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    /// Whether the thread runs at the requested priority (false where the OS refused).
    lowered: bool,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
    }
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("lowered", &self.inner.lowered)
            .finish_non_exhaustive()
    }
}

impl Background {
    /// Start the thread (named `name`) and its runtime.
    pub fn start(name: &str, priority: BackgroundPriority) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<bool>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let lowered = match priority {
                    BackgroundPriority::Idle => lower_this_thread(),
                    BackgroundPriority::Normal => true,
                };
                let _ = ready_tx.send(lowered);
                // Serves spawned tasks until stopped; dropping the runtime then cancels them.
                runtime.block_on(async {
                    let _ = stop_rx.await;
                });
            })?;
        let lowered = ready_rx.recv().unwrap_or(false);
        if !lowered {
            tracing::warn!(
                thread = name,
                "background thread runs at normal priority: the OS refused SCHED_IDLE"
            );
        }
        Ok(Self {
            inner: Arc::new(Inner {
                handle,
                lowered,
                stop: Mutex::new(Some(stop_tx)),
            }),
        })
    }

    /// The runtime's handle, for code that takes one.
    pub fn handle(&self) -> &Handle {
        &self.inner.handle
    }

    /// Whether the thread got the priority it was started with.
    pub fn lowered(&self) -> bool {
        self.inner.lowered
    }

    /// Run `task` on the bookkeeping thread.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.handle.spawn(task)
    }

    /// Run `task` there and wait for its result: for opening what its tasks will use (a
    /// database pool, whose connections and engine threads then belong to this thread).
    pub async fn run<F>(&self, task: F) -> std::io::Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(task).await.map_err(std::io::Error::other)
    }
}

/// How long the bookkeeping queues (AI audit events, AI usage records) let records gather
/// after the first one before writing. Every commit rewrites the last B-tree pages of the
/// tables and indexes it touches, so bigger batches write fewer pages per record: 200 ms
/// instead of 50 ms cut Assay's added p99 at concurrency 1 by about 0.1 ms
/// (bench/chat-completions, 2026-12-02). A crash loses at most this window; a clean
/// shutdown flushes.
pub const BOOKKEEPING_GATHER: Duration = Duration::from_millis(200);
/// The most records one bookkeeping write takes.
pub const BOOKKEEPING_BATCH: usize = 2048;
/// A bookkeeping write taking this long is logged at `warn`: storage that slow backs the
/// queue up, and once it is half full requests are held ([`BatchQueue::wait_for_room`];
/// the AI queues hold 10,000 records, so half is 1.25 s of 4,000 AI calls/s).
pub const SLOW_BOOKKEEPING_WRITE: Duration = Duration::from_millis(500);

/// A bounded queue whose items a task on some runtime writes in batches: callers push
/// without waiting; the writer wakes for the first item, lets more arrive for `gather`
/// (one write per tick under load instead of one per item), and writes up to `max_batch`
/// at a time. [`BatchQueue::flush`] waits until everything pushed before it is written.
pub struct BatchQueue<T> {
    tx: mpsc::Sender<Item<T>>,
    /// Signalled each time the writer takes items off the queue, and when it stops: what
    /// [`BatchQueue::wait_for_room`] callers wait for.
    taken: Arc<Notify>,
    /// Signalled by a [`BatchQueue::wait_for_room`] caller about to wait: the writer cuts
    /// its gathering short, as producers are held until it takes a batch.
    pressure: Arc<Notify>,
}

impl<T> Clone for BatchQueue<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            taken: self.taken.clone(),
            pressure: self.pressure.clone(),
        }
    }
}

/// The writer's end of the queue. However the writer task ends (every sender dropped, or
/// its runtime dropped with it), it closes the queue and then wakes every
/// [`BatchQueue::wait_for_room`] caller, who then sees it closed instead of waiting on.
struct WriterEnd<T> {
    rx: mpsc::Receiver<Item<T>>,
    taken: Arc<Notify>,
}

impl<T> Drop for WriterEnd<T> {
    fn drop(&mut self) {
        self.rx.close();
        self.taken.notify_waiters();
    }
}

enum Item<T> {
    Record(T),
    /// Answered once every record queued before it has been through `write`.
    Flush(oneshot::Sender<()>),
}

impl<T: Send + 'static> BatchQueue<T> {
    /// Start the writer on `runtime`. It ends when every clone of the queue is dropped,
    /// after writing what is queued. `write` handles (logs, counts) its own failures.
    /// `name` labels the queue's metrics (`assay_bookkeeping_write_seconds`, the time each
    /// write took; `assay_bookkeeping_backlog`, records queued after each take) and its
    /// slow-write warnings.
    pub fn start<W, Fut>(
        name: &'static str,
        runtime: &Handle,
        capacity: usize,
        gather: Duration,
        max_batch: usize,
        mut write: W,
    ) -> Self
    where
        W: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Item<T>>(capacity.max(1));
        let max_batch = max_batch.max(1);
        let taken = Arc::new(Notify::new());
        let pressure = Arc::new(Notify::new());
        let mut end = WriterEnd {
            rx,
            taken: taken.clone(),
        };
        let held = pressure.clone();
        let half = tx.max_capacity() / 2;
        runtime.spawn(async move {
            let mut items = Vec::with_capacity(max_batch);
            loop {
                let Some(first) = end.rx.recv().await else {
                    return;
                };
                items.push(first);
                let flushing =
                    |items: &[Item<T>]| items.iter().any(|i| matches!(i, Item::Flush(_)));
                // Gather — unless producers are held for room (or would be at once): then
                // sleeping through the window only stalls requests (a 200 ms window made
                // pauses of up to 460 ms at concurrency 8, bench/RESULTS.md 2026-12-07).
                if !flushing(&items) && end.rx.len() <= half {
                    tokio::select! {
                        () = tokio::time::sleep(gather) => {}
                        () = held.notified() => {}
                    }
                }
                // Take what arrived meanwhile, up to a batch (a flush marker does not count).
                while items.len() < max_batch {
                    match end.rx.try_recv() {
                        Ok(i) => items.push(i),
                        Err(_) => break,
                    }
                }
                end.taken.notify_waiters();
                metrics::gauge!("assay_bookkeeping_backlog", "queue" => name)
                    .set(end.rx.len() as f64);
                let mut records = Vec::with_capacity(items.len());
                let mut acks = Vec::new();
                for i in items.drain(..) {
                    match i {
                        Item::Record(r) => records.push(r),
                        Item::Flush(ack) => acks.push(ack),
                    }
                }
                if !records.is_empty() {
                    let (n, began) = (records.len(), Instant::now());
                    write(records).await;
                    let took = began.elapsed();
                    metrics::histogram!("assay_bookkeeping_write_seconds", "queue" => name)
                        .record(took.as_secs_f64());
                    if took >= SLOW_BOOKKEEPING_WRITE {
                        tracing::warn!(
                            queue = name,
                            records = n,
                            took_ms = took.as_millis() as u64,
                            backlog = end.rx.len(),
                            "bookkeeping write slow (storage or CPU starved)"
                        );
                    }
                }
                for ack in acks {
                    let _ = ack.send(());
                }
            }
        });
        Self {
            tx,
            taken,
            pressure,
        }
    }

    /// [`BatchQueue::start`] with the bookkeeping window ([`BOOKKEEPING_GATHER`],
    /// [`BOOKKEEPING_BATCH`]): one write per window under load instead of one per record,
    /// and no wake-up of the writer per record.
    pub fn start_bookkeeping<W, Fut>(
        name: &'static str,
        runtime: &Handle,
        capacity: usize,
        write: W,
    ) -> Self
    where
        W: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::start(
            name,
            runtime,
            capacity,
            BOOKKEEPING_GATHER,
            BOOKKEEPING_BATCH,
            write,
        )
    }

    /// Queue `item` without waiting; a full queue (or a stopped writer) hands it back.
    pub fn push(&self, item: T) -> Result<(), T> {
        self.tx
            .try_send(Item::Record(item))
            .map_err(|e| match e.into_inner() {
                Item::Record(r) => r,
                Item::Flush(_) => unreachable!("only records are pushed here"),
            })
    }

    /// Items queued and not yet taken by the writer.
    pub fn backlog(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Admission control for callers that can wait: while more than half the queue is
    /// taken (the writer is falling behind — at low priority, only when the CPU is saturated
    /// for seconds), wait, so producers slow down instead of the queue overflowing and
    /// dropping records. Each batch the writer takes lets waiting callers go on, so the
    /// pauses are about one batch long. Returns whether it waited.
    ///
    /// Waiters sleep until the writer takes a batch (a notification, not polling: under
    /// overload thousands of requests wait here, and each poll of one wakes its whole
    /// connection task — at 2 ms polling that work alone saturated the core and starved the
    /// writer it was waiting for, bench/RESULTS.md 2026-12-07).
    pub async fn wait_for_room(&self) -> bool {
        let half = self.tx.max_capacity() / 2;
        if self.backlog() <= half {
            return false;
        }
        loop {
            let taken = self.taken.notified();
            tokio::pin!(taken);
            // Registered before the check, so a batch taken in between still wakes us.
            taken.as_mut().enable();
            if self.backlog() <= half || self.tx.is_closed() {
                return true;
            }
            self.pressure.notify_one();
            taken.await;
        }
    }

    /// Wait until every item pushed before this call has been written (a stopped writer
    /// returns at once).
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Item::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// Schedule the calling thread `SCHED_IDLE` (Linux): it then runs only in the time other
/// threads of the CPU leave, and any of them that becomes runnable preempts it. False where
/// the OS refused or is not Linux. Threads it starts afterwards inherit the policy.
#[cfg(target_os = "linux")]
pub fn lower_this_thread() -> bool {
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    )
    .is_ok()
}

#[cfg(not(target_os = "linux"))]
pub fn lower_this_thread() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scheduling policy of the calling thread, read back from the kernel.
    #[cfg(target_os = "linux")]
    fn policy_here() -> String {
        std::fs::read_to_string("/proc/thread-self/sched")
            .expect("sched file")
            .lines()
            .find(|l| l.starts_with("policy"))
            .expect("policy line")
            .split(':')
            .nth(1)
            .expect("value")
            .trim()
            .to_owned()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn idle_thread_and_threads_it_starts_are_sched_idle() {
        let bg = Background::start("bg-test", BackgroundPriority::Idle).expect("thread");
        assert!(bg.lowered());
        // SCHED_IDLE is policy 5.
        assert_eq!(bg.run(async { policy_here() }).await.unwrap(), "5");
        // A thread started from a task there (as a SQLite pool starts its engine threads).
        let child = bg
            .run(async { std::thread::spawn(policy_here).join().unwrap() })
            .await
            .unwrap();
        assert_eq!(child, "5");
        // Request threads keep the normal policy.
        assert_eq!(policy_here(), "0");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn normal_priority_keeps_the_normal_policy() {
        let bg = Background::start("bg-test", BackgroundPriority::Normal).expect("thread");
        assert_eq!(bg.run(async { policy_here() }).await.unwrap(), "0");
    }

    #[tokio::test]
    async fn batches_are_gathered_and_flush_waits_for_earlier_items() {
        use std::sync::Mutex as StdMutex;
        let bg = Background::start("bg-test", BackgroundPriority::Idle).expect("thread");
        let written: Arc<StdMutex<Vec<Vec<u32>>>> = Arc::default();
        let w = written.clone();
        let q = BatchQueue::start(
            "test",
            bg.handle(),
            100,
            Duration::from_millis(20),
            8,
            move |b| {
                w.lock().unwrap().push(b);
                async {}
            },
        );
        for i in 0..20 {
            q.push(i).unwrap();
        }
        q.flush().await;
        let batches = written.lock().unwrap().clone();
        let all: Vec<u32> = batches.iter().flatten().copied().collect();
        assert_eq!(all, (0..20).collect::<Vec<_>>(), "every item, in order");
        assert!(batches.iter().all(|b| b.len() <= 8), "{batches:?}");
        assert!(batches.len() < 20, "items were gathered: {batches:?}");
        // A flush with nothing queued returns too.
        q.flush().await;
    }

    /// A queue of `capacity` whose writer takes one item at a time and holds it in `write`
    /// until the returned sender says `true`.
    fn held_queue(
        capacity: usize,
    ) -> (
        Background,
        BatchQueue<u32>,
        tokio::sync::watch::Sender<bool>,
    ) {
        let bg = Background::start("bg-test", BackgroundPriority::Idle).expect("thread");
        let (release, wait) = tokio::sync::watch::channel(false);
        let q = BatchQueue::start(
            "test",
            bg.handle(),
            capacity,
            Duration::ZERO,
            1,
            move |_b| {
                let mut wait = wait.clone();
                async move {
                    let _ = wait.wait_for(|go| *go).await;
                }
            },
        );
        (bg, q, release)
    }

    #[tokio::test]
    async fn a_full_queue_hands_the_item_back() {
        let (_bg, q, release) = held_queue(2);
        // The writer takes one item and blocks in `write`; two more fill the queue.
        q.push(1).unwrap();
        let mut refused = None;
        for i in 2..10 {
            if let Err(back) = q.push(i) {
                refused = Some(back);
                break;
            }
        }
        assert!(refused.is_some(), "a bounded queue refuses when full");
        release.send(true).unwrap();
        q.flush().await;
    }

    #[tokio::test]
    async fn producers_wait_while_the_queue_is_more_than_half_full() {
        let (_bg, empty, _) = held_queue(8);
        assert!(
            !empty.wait_for_room().await,
            "an empty queue admits at once"
        );
        let (_bg2, q, release) = behind_queue().await;
        assert!(q.backlog() > 4, "{}", q.backlog());
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.wait_for_room().await }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiting.is_finished(), "held while the writer is behind");
        release.send(true).unwrap();
        assert!(waiting.await.unwrap(), "admitted once the writer caught up");
        assert!(q.backlog() <= 4);
    }

    /// A queue of 8 whose writer has taken one item and holds it, with six more queued.
    async fn behind_queue() -> (
        Background,
        BatchQueue<u32>,
        tokio::sync::watch::Sender<bool>,
    ) {
        let (bg, q, release) = held_queue(8);
        q.push(0).unwrap();
        while q.backlog() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for i in 1..=6 {
            q.push(i).unwrap();
        }
        (bg, q, release)
    }

    /// Counts how often the wrapped future is polled.
    struct CountPolls<F> {
        inner: std::pin::Pin<Box<F>>,
        polls: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl<F: Future> Future for CountPolls<F> {
        type Output = F::Output;
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<F::Output> {
            self.polls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.as_mut().poll(cx)
        }
    }

    #[tokio::test]
    async fn a_waiting_producer_sleeps_until_the_writer_takes_a_batch() {
        let (_bg, q, release) = behind_queue().await;
        let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let waiting = tokio::spawn(CountPolls {
            inner: Box::pin({
                let q = q.clone();
                async move { q.wait_for_room().await }
            }),
            polls: polls.clone(),
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Polling on a timer would have woken it dozens of times by now; under overload
        // thousands of waiters doing that took the CPU the writer needed.
        assert!(!waiting.is_finished());
        let n = polls.load(std::sync::atomic::Ordering::Relaxed);
        assert!(n <= 2, "polled {n} times while nothing changed");
        release.send(true).unwrap();
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn a_held_producer_cuts_the_writers_gathering_short() {
        let bg = Background::start("bg-test", BackgroundPriority::Idle).expect("thread");
        let q = BatchQueue::start(
            "test",
            bg.handle(),
            8,
            Duration::from_secs(3600),
            8,
            |_b| async {},
        );
        // The writer takes the first item and starts gathering for an hour.
        q.push(0).unwrap();
        while q.backlog() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for i in 1..=6 {
            q.push(i).unwrap();
        }
        // A producer held for room must not wait out the window: a liveness bound far
        // below the hour, not a speed target.
        let waited = tokio::time::timeout(Duration::from_secs(60), q.wait_for_room()).await;
        assert_eq!(
            waited.ok(),
            Some(true),
            "released when the writer took the batch"
        );
        assert_eq!(q.backlog(), 0);
    }

    #[tokio::test]
    async fn a_stopped_writer_releases_waiting_producers() {
        let (bg, q, _release) = behind_queue().await;
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.wait_for_room().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        // The writer's runtime goes away with the queue still behind.
        drop(bg);
        assert!(waiting.await.unwrap(), "released, not left waiting forever");
        assert!(q.push(99).is_err(), "a stopped writer takes nothing more");
    }

    #[tokio::test]
    async fn dropping_the_last_clone_stops_the_thread() {
        let bg = Background::start("bg-test", BackgroundPriority::Idle).expect("thread");
        let (tx, rx) = oneshot::channel::<()>();
        // A task that would never finish: it is dropped with the runtime, dropping `tx`.
        bg.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        drop(bg.clone());
        // Still running after a clone went away.
        assert_eq!(bg.run(async { 7 }).await.unwrap(), 7);
        drop(bg);
        assert!(
            rx.await.is_err(),
            "the pending task was dropped with the runtime"
        );
    }
}
