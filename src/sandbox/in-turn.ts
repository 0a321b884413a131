// Containers that share a network are removed one after another, never side by side. Docker 20.10 before 20.10.27
// (Debian 12's docker.io is 20.10.24) can deadlock when two endpoints of one network go at once: one container's
// leaving holds the network's lock and waits for the controller's, while the deletion of the other's endpoint holds
// the controller's and waits for the network's (moby/moby#46661, libnetwork#2679). The engine then answers no
// request about those containers or networks again until it is restarted. Removing them in turn takes a few tens of
// milliseconds more, after the command has exited (the teardown process) or while nothing waits on it.

/** Runs `work` on each item, the next only once the one before has settled; failures are the caller's to catch. */
export async function inTurn<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  for (const item of items) await work(item);
}
