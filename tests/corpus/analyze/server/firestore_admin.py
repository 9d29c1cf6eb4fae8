"""Backend jobs on Firestore through firebase-admin."""

import firebase_admin
from firebase_admin import auth, credentials, firestore, storage
from firebase_admin import db as rtdb
from google.cloud.firestore_v1 import FieldFilter

firebase_admin.initialize_app(credentials.ApplicationDefault())
db = firestore.client()


def active_users(limit: int = 100):
    query = db.collection("users").where(filter=FieldFilter("active", "==", True)).limit(limit)
    return [doc.to_dict() for doc in query.stream()]


def user_orders(uid: str):
    return list(db.collection("users").document(uid).collection("orders").stream())


def touch(uid: str) -> None:
    db.collection("users").document(uid).update({
        "last_seen": firestore.SERVER_TIMESTAMP,
        "visits": firestore.Increment(1),
    })


def delete_user_data(uid: str) -> None:
    db.collection("users").document(uid).delete()
    auth.delete_user(uid)


def create_admin(email: str, password: str) -> str:
    user = auth.create_user(email=email, password=password)
    auth.set_custom_user_claims(user.uid, {"admin": True})
    return user.uid


def bulk_tag(ids: list[str], tag: str) -> None:
    batch = db.batch()
    for i in ids:
        batch.update(db.collection("items").document(i), {"tags": firestore.ArrayUnion([tag])})
    batch.commit()


def move_credit(src: str, dst: str, amount: int) -> None:
    transaction = db.transaction()

    @firestore.transactional
    def run(tx):
        snap = db.collection("wallets").document(src).get(transaction=tx)
        tx.update(db.collection("wallets").document(dst), {"balance": snap.get("balance") + amount})

    run(transaction)


def read_any(collection_name: str, key: str):
    return db.collection(collection_name).document(key).get()


def archive_report(path: str, content: bytes) -> None:
    bucket = storage.bucket()
    bucket.blob(f"reports/{path}").upload_from_string(content)


def presence(uid: str) -> dict:
    return rtdb.reference(f"presence/{uid}").get()
