/** Shares one operation among the calls that arrive for the same key before it starts (see `Coalescer`). */

/** One call waiting for its group's operation. */
interface Waiter<In, Out> {
  input: In;
  resolve: (o: Out) => void;
  reject: (e: unknown) => void;
}

/**
 * Groups calls per key: every call that arrives before the group's operation starts shares it, and the
 * operation starts only after they all arrived, so nobody sees a result older than its own call. Used so a burst
 * of Closes in one namespace costs one listing and one deletion process instead of two per connection.
 */
export class Coalescer<In, Out> {
  readonly #open = new Map<string, Waiter<In, Out>[]>();
  readonly #run: (inputs: In[]) => Promise<Out[]>;

  /** `run` gets the inputs of one group, in arrival order, and resolves with one output per input. */
  constructor(run: (inputs: In[]) => Promise<Out[]>) {
    this.#run = run;
  }

  /** Joins the open group of `key` (or opens one) and resolves with this input's output. */
  submit(key: string, input: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      let group = this.#open.get(key);
      if (!group) {
        const g: Waiter<In, Out>[] = [];
        group = g;
        this.#open.set(key, g);
        setImmediate(() => {
          this.#open.delete(key);
          this.#run(g.map((x) => x.input)).then(
            (outs) => {
              for (const [i, x] of g.entries()) x.resolve(outs[i] as Out);
            },
            (err: unknown) => {
              for (const x of g) x.reject(err);
            },
          );
        });
      }
      group.push({ input, resolve, reject });
    });
  }
}
