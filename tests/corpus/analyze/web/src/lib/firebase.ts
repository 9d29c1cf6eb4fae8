import { initializeApp } from 'firebase/app'
import {
  getFirestore, collection, doc, getDoc, getDocs, addDoc, setDoc, updateDoc, deleteDoc, query, where, orderBy,
  limit, onSnapshot, runTransaction, writeBatch, serverTimestamp, increment, arrayUnion, collectionGroup,
} from 'firebase/firestore'
import { getAuth, signInWithEmailAndPassword, createUserWithEmailAndPassword, onAuthStateChanged, signOut as fbSignOut } from 'firebase/auth'
import { getStorage, ref, uploadBytes, getDownloadURL, deleteObject } from 'firebase/storage'
import { getFunctions, httpsCallable } from 'firebase/functions'
import { getDatabase, ref as dbRef, onValue, set, push } from 'firebase/database'

const app = initializeApp({ apiKey: 'x', projectId: 'demo-app' })
export const db = getFirestore(app)
export const auth = getAuth(app)
const storage = getStorage(app)
const functions = getFunctions(app)
const rtdb = getDatabase(app)

const postsRef = collection(db, 'posts')

export async function recentPosts() {
  const q = query(postsRef, where('published', '==', true), orderBy('createdAt', 'desc'), limit(20))
  const snap = await getDocs(q)
  return snap.docs.map((d) => ({ id: d.id, ...d.data() }))
}

export async function getPost(id: string) {
  const snap = await getDoc(doc(db, 'posts', id))
  return snap.exists() ? snap.data() : null
}

export async function createPost(title: string, authorId: string) {
  return addDoc(postsRef, { title, authorId, createdAt: serverTimestamp(), likes: 0 })
}

export async function likePost(id: string, uid: string) {
  await updateDoc(doc(db, 'posts', id), { likes: increment(1), likedBy: arrayUnion(uid) })
}

export async function saveSettings(uid: string, settings: Record<string, unknown>) {
  await setDoc(doc(db, 'users', uid), { settings }, { merge: true })
}

export async function deletePost(id: string) {
  await deleteDoc(doc(db, 'posts', id))
}

export async function listComments(postId: string) {
  const snap = await getDocs(collection(db, 'posts', postId, 'comments'))
  return snap.docs.map((d) => d.data())
}

export async function allCommentsBy(uid: string) {
  return getDocs(query(collectionGroup(db, 'comments'), where('authorId', '==', uid)))
}

export function watchPost(id: string, cb: (data: unknown) => void) {
  return onSnapshot(doc(db, 'posts', id), (snap) => cb(snap.data()))
}

export async function transfer(from: string, to: string, amount: number) {
  await runTransaction(db, async (tx) => {
    const a = await tx.get(doc(db, 'accounts', from))
    tx.update(doc(db, 'accounts', from), { balance: a.data()!.balance - amount })
    tx.update(doc(db, 'accounts', to), { balance: increment(amount) })
  })
}

export async function archiveAll(ids: string[]) {
  const batch = writeBatch(db)
  for (const id of ids) batch.update(doc(db, 'posts', id), { archived: true })
  await batch.commit()
}

export async function readAny(name: string, id: string) {
  return getDoc(doc(db, name, id))
}

export async function login(email: string, password: string) {
  return signInWithEmailAndPassword(auth, email, password)
}

export async function register(email: string, password: string) {
  return createUserWithEmailAndPassword(auth, email, password)
}

export function onUser(cb: (u: unknown) => void) {
  return onAuthStateChanged(auth, cb)
}

export const logout = () => fbSignOut(auth)

export async function uploadCover(postId: string, file: Blob) {
  const coverRef = ref(storage, `covers/${postId}.jpg`)
  await uploadBytes(coverRef, file)
  return getDownloadURL(coverRef)
}

export async function removeCover(postId: string) {
  await deleteObject(ref(storage, 'covers/' + postId + '.jpg'))
}

export async function moderate(postId: string) {
  const moderatePost = httpsCallable(functions, 'moderatePost')
  return moderatePost({ postId })
}

export function watchPresence(cb: (v: unknown) => void) {
  return onValue(dbRef(rtdb, 'presence'), (s) => cb(s.val()))
}

export async function setOnline(uid: string) {
  await set(dbRef(rtdb, `presence/${uid}`), { online: true })
  await push(dbRef(rtdb, 'events'), { uid, type: 'online' })
}
