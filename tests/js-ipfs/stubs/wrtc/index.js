// js-ipfs (ipfs-daemon) treats a missing export as "no WebRTC support": the offline test node needs none.
module.exports = undefined;
