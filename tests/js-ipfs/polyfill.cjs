// Node 20 has no Promise.withResolvers (Node 22 has), and a dependency of js-ipfs (it-queue, through
// mortice) calls it. Preloaded with NODE_OPTIONS="--require <this file>" by tests/support/ipfs_node.py.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
