import firebase from 'firebase/app'
import 'firebase/firestore'
import 'firebase/auth'
import 'firebase/storage'
import 'firebase/database'

firebase.initializeApp({ apiKey: 'x', projectId: 'legacy-app' })

const db = firebase.firestore()
const auth = firebase.auth()

export function loadOrders(uid) {
  return db.collection('orders')
    .where('uid', '==', uid)
    .orderBy('createdAt', 'desc')
    .limit(50)
    .get()
    .then((snap) => snap.docs.map((d) => d.data()))
}

export function placeOrder(uid, items) {
  return db.collection('orders').add({
    uid,
    items,
    createdAt: firebase.firestore.FieldValue.serverTimestamp(),
  })
}

export function cancelOrder(id) {
  return db.collection('orders').doc(id).delete()
}

export function addLine(orderId, line) {
  return db.collection('orders').doc(orderId).collection('lines').add(line)
}

export function watchOrder(id, cb) {
  return db.collection('orders').doc(id).onSnapshot((doc) => cb(doc.data()))
}

export function updateProfile(uid, data) {
  return firebase.firestore().collection('users').doc(uid).update(data)
}

export function bumpCounter(name) {
  const ref = db.doc(`counters/${name}`)
  return ref.set({ n: firebase.firestore.FieldValue.increment(1) }, { merge: true })
}

export function transferStock(fromId, toId) {
  return db.runTransaction(async (t) => {
    const a = await t.get(db.collection('stock').doc(fromId))
    t.update(db.collection('stock').doc(toId), { qty: a.data().qty })
  })
}

export function signIn(email, password) {
  return auth.signInWithEmailAndPassword(email, password)
}

export function onUser(cb) {
  return firebase.auth().onAuthStateChanged(cb)
}

export function uploadReceipt(orderId, file) {
  return firebase.storage().ref('receipts').child(`${orderId}.pdf`).put(file)
}

export function receiptUrl(orderId) {
  return firebase.storage().ref(`receipts/${orderId}.pdf`).getDownloadURL()
}

export function watchStatus(uid, cb) {
  firebase.database().ref('status/' + uid).on('value', (snap) => cb(snap.val()))
}

export function setStatus(uid, status) {
  return firebase.database().ref('status').child(uid).set(status)
}

export function callFunction(data) {
  return firebase.functions().httpsCallable('recalculate')(data)
}
