const functions = require('firebase-functions')
const admin = require('firebase-admin')
const { FieldValue } = require('firebase-admin/firestore')

admin.initializeApp()
const db = admin.firestore()

exports.onUserCreate = functions.auth.user().onCreate(async (user) => {
  await db.collection('users').doc(user.uid).set({
    email: user.email,
    createdAt: FieldValue.serverTimestamp(),
  })
})

exports.nightlyCleanup = functions.pubsub.schedule('every 24 hours').onRun(async () => {
  const stale = await db.collection('sessions').where('expiresAt', '<', new Date()).get()
  const batch = db.batch()
  stale.forEach((doc) => batch.delete(doc.ref))
  await batch.commit()
})

exports.setRole = functions.https.onCall(async (data, context) => {
  await admin.auth().setCustomUserClaims(data.uid, { role: data.role })
  const user = await admin.auth().getUser(data.uid)
  return { email: user.email }
})

exports.verify = functions.https.onRequest(async (req, res) => {
  const token = await admin.auth().verifyIdToken(req.headers.authorization)
  const snap = await db.collection('orgs').doc(token.org).collection('members').get()
  res.json(snap.docs.map((d) => d.id))
})

exports.exportAvatars = functions.https.onRequest(async (req, res) => {
  const bucket = admin.storage().bucket()
  const [files] = await bucket.getFiles({ prefix: 'avatars/' })
  await bucket.file('exports/avatars.json').save(JSON.stringify(files.map((f) => f.name)))
  res.sendStatus(204)
})

exports.logVisit = functions.https.onRequest(async (req, res) => {
  await admin.database().ref('visits').push({ at: Date.now() })
  res.sendStatus(204)
})
