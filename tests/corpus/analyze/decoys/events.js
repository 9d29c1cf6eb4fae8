// A tiny event bus and a Map-backed store; method names collide with Firebase/Supabase ones.
const listeners = {}

function on(event, fn) {
  (listeners[event] = listeners[event] || []).push(fn)
}

function channel(name) {
  return { on: (e, fn) => on(`${name}:${e}`, fn), subscribe: () => name }
}

const store = new Map()
const ref = (path) => ({ set: (v) => store.set(path, v), once: () => store.get(path), on: (e, fn) => on(path, fn) })

function onSnapshot(key, fn) {
  on(key, fn)
}

module.exports = function wire() {
  channel('room').on('message', console.log).subscribe()
  ref('presence/1').set(true)
  ref('presence/1').on('value', console.log)
  onSnapshot('posts', console.log)
  return store
}
