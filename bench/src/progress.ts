import { SingleBar } from "cli-progress";

export interface Bar {
  update(done: number): void;
  stop(): void;
}

/** A line per phase; a progress bar for phases that take a while, when stdout is a terminal. */
export class Progress {
  private readonly interactive = process.stdout.isTTY === true;
  private readonly startedAt = Date.now();

  line(text: string): void {
    process.stdout.write(`[${((Date.now() - this.startedAt) / 1000).toFixed(1).padStart(6)} s] ${text}\n`);
  }

  bar(label: string, total: number): Bar {
    this.line(label);
    if (!this.interactive || total < 1000) return { update() {}, stop() {} };
    const bar = new SingleBar({ format: "         {bar} {percentage}% | {value}/{total}", hideCursor: true, clearOnComplete: true });
    bar.start(total, 0);
    let stopped = false;
    return {
      update: (done) => {
        if (!stopped) bar.update(Math.min(done, total));
      },
      stop: () => {
        if (stopped) return;
        stopped = true;
        bar.stop();
      },
    };
  }
}
