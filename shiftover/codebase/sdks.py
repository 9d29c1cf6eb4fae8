"""What the analyzer recognizes, as data.

A *receiver kind* names what an expression holds (a Supabase client, a Firestore document reference, a Mongo
collection ...). `KINDS[kind][key]` says what applying `key` to such a receiver gives:

    key "name"   a method call `.name(...)`          key ".name"  a property read `.name` (no call)
    key ".*"     any other property read             key "*"      any other method call
    key "[]"     a subscript `x["name"]`             key "()"     calling the receiver itself (`Model()`, `new Model()`)

Module kinds are `mod:<module>`; a name imported from a module is called through `KINDS["mod:<module>"][name]`.
A `Rule` either moves to another kind (a builder: `from("t")`, `collection("c")`), records an operation
(service, operation) — a *finding* — or both (`select()` is a read and the chain goes on with filters).
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICES = ("database", "auth", "storage", "realtime", "functions")
OPERATIONS = ("read", "write", "delete", "subscribe", "admin", "invoke")

# Flags a reviewer needs. Call-level flags make a call "needs a person"; collection-level ones cost once per collection.
CALL_FLAGS = ("realtime", "transaction", "batch", "raw_sql", "rpc", "subcollection", "field_value", "dynamic_name")
COLLECTION_FLAGS = ("rls",)
FLAG_TEXT = {
    "realtime": "realtime subscription: the unified API needs a change feed for it",
    "transaction": "transaction: atomicity must be re-expressed with the unified API's transactions",
    "batch": "batched writes: regroup as a unified batch, check provider limits",
    "raw_sql": "raw SQL: rewrite as unified queries or keep a SQL escape hatch",
    "rpc": "database function (RPC): its SQL lives in the database and has to move too",
    "subcollection": "Firestore subcollection: needs a flattened table or a composite key",
    "field_value": "FieldValue sentinel (serverTimestamp/increment/arrayUnion...): no direct equivalent",
    "dynamic_name": "table/collection name is computed at run time: cannot be mapped statically",
    "rls": "anon-key Supabase client: authorization lives in row-level-security policies to port",
}


@dataclass(frozen=True, slots=True)
class Rule:
    to: str | None = None  # next receiver kind; None ends the chain
    service: str | None = None
    operation: str | None = None
    name: str | None = None  # how the collection name is read (see resolve.apply_name)
    flags: tuple[str, ...] = ()

    @property
    def is_op(self) -> bool:
        return self.service is not None


def op(service: str, operation: str, name: str | None = None, to: str | None = None,
       flags: tuple[str, ...] = ()) -> Rule:
    return Rule(to=to, service=service, operation=operation, name=name, flags=flags)


def to(kind: str, name: str | None = None, flags: tuple[str, ...] = ()) -> Rule:
    return Rule(to=kind, name=name, flags=flags)


def _each(names: str, rule: Rule) -> dict[str, Rule]:
    return {n: rule for n in names.split()}


# --- Supabase (supabase-js and supabase-py share method names, camelCase and snake_case both listed) ---------------
_SUPABASE = {
    "sb": {
        "from": to("sb.table", "arg0"), "from_": to("sb.table", "arg0"), "table": to("sb.table", "arg0"),
        "schema": to("sb"),
        "rpc": op("database", "write", "arg0", to="sb.filter", flags=("rpc",)),
        ".auth": to("sb.auth"), ".storage": to("sb.storage"), ".functions": to("sb.functions"),
        "channel": to("sb.channel"),
        **_each("removeChannel removeAllChannels remove_channel remove_all_channels", op("realtime", "subscribe")),
    },
    "sb.table": {
        **_each("select", op("database", "read", to="sb.filter")),
        **_each("insert upsert update", op("database", "write", to="sb.filter")),
        "delete": op("database", "delete", to="sb.filter"),
    },
    "sb.filter": {"*": to("sb.filter")},
    "sb.auth": {
        ".admin": to("sb.auth.admin"),
        **_each("onAuthStateChange on_auth_state_change", op("auth", "subscribe")),
        **_each("getSession getUser getClaims get_session get_user get_claims", op("auth", "read")),
        "*": op("auth", "write"),
    },
    "sb.auth.admin": {"*": op("auth", "admin")},
    "sb.storage": {
        **_each("from from_", to("sb.bucket", "arg0")),
        **_each("createBucket deleteBucket emptyBucket updateBucket create_bucket delete_bucket empty_bucket "
                "update_bucket", op("storage", "admin", "arg0")),
        **_each("listBuckets getBucket list_buckets get_bucket", op("storage", "read")),
    },
    "sb.bucket": {
        **_each("upload update move copy uploadToSignedUrl createSignedUploadUrl upload_to_signed_url "
                "create_signed_upload_url", op("storage", "write")),
        **_each("download list getPublicUrl createSignedUrl createSignedUrls exists info get_public_url "
                "create_signed_url create_signed_urls", op("storage", "read")),
        "remove": op("storage", "delete"),
    },
    "sb.functions": {"invoke": op("functions", "invoke", "arg0")},
    "sb.channel": {
        "on": op("realtime", "subscribe", "option:table", to="sb.channel"),
        **_each("subscribe unsubscribe", op("realtime", "subscribe")),
        **_each("send track untrack", op("realtime", "write")),
    },
}

# --- Firestore (web v8 namespaced, firebase-admin JS and Python, google-cloud-firestore) -----------------------------
_FS_QUERY = "where orderBy order_by limit limitToLast limit_to_last offset startAt start_at startAfter start_after " \
            "endAt end_at endBefore end_before select withConverter count"
_FIRESTORE = {
    "fs.db": {
        "collection": to("fs.ref", "arg0"),
        "doc": to("fs.ref", "arg0"), "document": to("fs.ref", "arg0"),
        **_each("collectionGroup collection_group", to("fs.ref", "arg0", flags=("subcollection",))),
        **_each("batch bulkWriter bulk_writer", op("database", "write", flags=("batch",))),
        **_each("runTransaction run_transaction transaction", op("database", "write", flags=("transaction",))),
        **_each("getAll get_all listCollections list_collections collections", op("database", "read")),
        **_each("recursiveDelete recursive_delete", op("database", "delete", "ref0")),
    },
    "fs.ref": {
        **_each("collection doc document", to("fs.ref", "arg0")),
        **_each(_FS_QUERY, to("fs.ref")),
        "add": op("database", "write"),
        **_each("set update create", op("database", "write")),
        "delete": op("database", "delete"),
        **_each("get stream listDocuments list_documents listCollections collections", op("database", "read")),
        **_each("onSnapshot on_snapshot", op("realtime", "subscribe")),
    },
}

# --- Firebase web SDK v9 modular --------------------------------------------------------------------------------------
_FS_MODULAR = {
    **_each("getFirestore initializeFirestore", to("fs.db")),
    **_each("collection doc", to("fs.ref", "ref0+args1")),
    "collectionGroup": to("fs.ref", "args1", flags=("subcollection",)),
    "query": to("fs.ref", "ref0"),
    **_each("getDocs getDoc getDocFromCache getDocsFromCache getDocFromServer getDocsFromServer getCountFromServer "
            "getAggregateFromServer", op("database", "read", "ref0")),
    **_each("setDoc updateDoc addDoc", op("database", "write", "ref0")),
    "deleteDoc": op("database", "delete", "ref0"),
    "onSnapshot": op("realtime", "subscribe", "ref0"),
    "runTransaction": op("database", "write", flags=("transaction",)),
    "writeBatch": op("database", "write", flags=("batch",)),
}
_AUTH_MODULAR = {
    "getAuth": to("fb.auth9"), "initializeAuth": to("fb.auth9"),
    **_each("onAuthStateChanged onIdTokenChanged", op("auth", "subscribe")),
    **_each("signInWithEmailAndPassword createUserWithEmailAndPassword signInWithPopup signInWithRedirect "
            "signInAnonymously signInWithCustomToken signInWithCredential signInWithEmailLink signOut "
            "sendPasswordResetEmail sendEmailVerification sendSignInLinkToEmail confirmPasswordReset updateProfile "
            "updateEmail updatePassword reauthenticateWithCredential linkWithCredential linkWithPopup",
            op("auth", "write")),
    **_each("getRedirectResult fetchSignInMethodsForEmail getIdToken getIdTokenResult", op("auth", "read")),
    "deleteUser": op("auth", "delete"),
}
_STORAGE_MODULAR = {
    "getStorage": to("fb.storage9"),
    "ref": to("st.ref", "ref0+args1"),
    **_each("uploadBytes uploadBytesResumable uploadString updateMetadata", op("storage", "write", "ref0")),
    **_each("getDownloadURL getBlob getBytes getStream getMetadata listAll list", op("storage", "read", "ref0")),
    "deleteObject": op("storage", "delete", "ref0"),
}
_RTDB_MODULAR = {
    "getDatabase": to("rtdb"),
    **_each("ref child", to("rtdb.ref", "ref0+args1")),
    "query": to("rtdb.ref", "ref0"),
    "get": op("database", "read", "ref0"),
    **_each("set update push setWithPriority", op("database", "write", "ref0")),
    "remove": op("database", "delete", "ref0"),
    **_each("onValue onChildAdded onChildChanged onChildRemoved onChildMoved", op("realtime", "subscribe", "ref0")),
    "runTransaction": op("database", "write", "ref0", flags=("transaction",)),
}
_FUNCTIONS_MODULAR = {
    "getFunctions": to("fb.functions9"),
    "httpsCallable": op("functions", "invoke", "arg1"),
    "httpsCallableFromURL": op("functions", "invoke"),
}

# --- Firebase namespaced objects (v8 web, firebase-admin) -------------------------------------------------------------
_FIREBASE_NS = {
    "firestore": to("fs.db"), "auth": to("fb.auth"), "storage": to("fb.storage"), "database": to("rtdb"),
    "functions": to("fb.functions"), "initializeApp": to("ns:firebase"), "app": to("ns:firebase"),
}
_FIREBASE_ADMIN_NS = {
    "firestore": to("fs.db"), "auth": to("fbadmin.auth"), "storage": to("gcs.storage"), "database": to("rtdb"),
    "initializeApp": to("ns:firebase-admin"), "app": to("ns:firebase-admin"),
}
_FIREBASE_OBJECTS = {
    "fb.auth": {
        **_each("onAuthStateChanged onIdTokenChanged", op("auth", "subscribe")),
        **_each("getRedirectResult fetchSignInMethodsForEmail", op("auth", "read")),
        "*": op("auth", "write"),
    },
    "fbadmin.auth": {
        **_each("verifyIdToken verifySessionCookie", op("auth", "read")),
        "*": op("auth", "admin"),
    },
    "fb.storage": {"ref": to("st.ref", "arg0"), "refFromURL": to("st.ref")},
    "st.ref": {
        "child": to("st.ref", "arg0"),
        **_each("put putString updateMetadata", op("storage", "write")),
        **_each("getDownloadURL getMetadata listAll list", op("storage", "read")),
        "delete": op("storage", "delete"),
    },
    "gcs.storage": {"bucket": to("gcs.bucket", "arg0")},
    "gcs.bucket": {
        **_each("file blob get_blob", to("gcs.file", "arg0")),
        "upload": op("storage", "write"),
        **_each("getFiles get_files list_blobs", op("storage", "read")),
        **_each("deleteFiles delete_blobs", op("storage", "delete")),
    },
    "gcs.file": {
        **_each("save upload_from_filename upload_from_string upload_from_file createWriteStream makePublic "
                "make_public setMetadata", op("storage", "write")),
        **_each("download download_to_filename download_as_bytes download_as_text download_as_string getSignedUrl "
                "generate_signed_url exists getMetadata createReadStream", op("storage", "read")),
        "delete": op("storage", "delete"),
    },
    "rtdb": {**_each("ref reference", to("rtdb.ref", "arg0"))},
    "rtdb.ref": {
        "child": to("rtdb.ref", "arg0"),
        **_each("orderByChild orderByKey orderByValue limitToFirst limitToLast startAt endAt equalTo order_by_child "
                "order_by_key order_by_value limit_to_first limit_to_last start_at end_at equal_to", to("rtdb.ref")),
        **_each("once get", op("database", "read")),
        **_each("on off listen", op("realtime", "subscribe")),
        **_each("set update push setWithPriority", op("database", "write")),
        **_each("remove delete", op("database", "delete")),
        "transaction": op("database", "write", flags=("transaction",)),
    },
    "fb.functions": {"httpsCallable": op("functions", "invoke", "arg0")},
}
_FIREBASE_ADMIN_MODULAR = {
    "mod:firebase-admin/firestore": {"getFirestore": to("fs.db")},
    "mod:firebase-admin/auth": {"getAuth": to("fbadmin.auth")},
    "mod:firebase-admin/storage": {"getStorage": to("gcs.storage")},
    "mod:firebase-admin/database": {"getDatabase": to("rtdb")},
    "mod:firebase-admin/app": {"initializeApp": to("ns:firebase-admin")},
}

# --- MongoDB (node driver, mongoose, pymongo, motor) ------------------------------------------------------------------
_MONGO_COLL = {
    **_each("find findOne find_one aggregate countDocuments count_documents estimatedDocumentCount "
            "estimated_document_count distinct findById exists", op("database", "read", to="mongo.query")),
    **_each("insertOne insert_one insertMany insert_many updateOne update_one updateMany update_many replaceOne "
            "replace_one findOneAndUpdate find_one_and_update findOneAndReplace find_one_and_replace create "
            "findByIdAndUpdate", op("database", "write", to="mongo.query")),
    **_each("bulkWrite bulk_write", op("database", "write", flags=("batch",))),
    **_each("deleteOne delete_one deleteMany delete_many findOneAndDelete find_one_and_delete findByIdAndDelete "
            "findByIdAndRemove", op("database", "delete", to="mongo.query")),
    "watch": op("realtime", "subscribe"),
    **_each("createIndex create_index createIndexes create_indexes dropIndex drop_index drop",
            op("database", "admin")),
}
_MONGO = {
    "mongo.client": {
        **_each("db get_database get_default_database", to("mongo.db")),
        ".*": to("mongo.db"), "[]": to("mongo.db"),
        **_each("startSession start_session", to("mongo.session")),
        "watch": op("realtime", "subscribe"),
    },
    "mongo.db": {
        **_each("collection get_collection", to("mongo.coll", "arg0")),
        ".*": to("mongo.coll", "attr"), "[]": to("mongo.coll", "index0"),
        **_each("listCollections list_collection_names listCollectionNames", op("database", "read")),
        **_each("createCollection create_collection dropCollection drop_collection dropDatabase command",
                op("database", "admin")),
        "watch": op("realtime", "subscribe"),
    },
    "mongo.coll": _MONGO_COLL,
    "mongo.query": {"*": to("mongo.query")},
    "mongo.session": {
        **_each("withTransaction with_transaction startTransaction start_transaction",
                op("database", "write", flags=("transaction",))),
    },
    "mongoose.model": {
        **{k: v for k, v in _MONGO_COLL.items() if k not in {"drop", "distinct"}},
        "insertMany": op("database", "write", to="mongo.query"),
        "()": to("mongoose.doc"),
    },
    "mongoose.doc": {"save": op("database", "write"), **_each("deleteOne remove", op("database", "delete"))},
}

# --- SQL drivers (Python) ---------------------------------------------------------------------------------------------
_SQL = {
    "pg.conn": {
        "cursor": to("pg.cur"),
        "execute": op("database", "read", "sql0", flags=("raw_sql",)),
        "executemany": op("database", "write", "sql0", flags=("raw_sql", "batch")),
        "transaction": to("pg.conn"),
    },
    "pg.cur": {
        "execute": op("database", "read", "sql0", flags=("raw_sql",)),
        "executemany": op("database", "write", "sql0", flags=("raw_sql", "batch")),
        "copy": op("database", "write", "sql0", flags=("raw_sql",)),
        "copy_expert": op("database", "write", "sql0", flags=("raw_sql",)),
    },
    "pg.connclass": {"connect": to("pg.conn")},
    "pg.pool": {**_each("connection getconn", to("pg.conn"))},
    "sa.engine": {
        **_each("connect begin raw_connection", to("sa.conn")),
        "execute": op("database", "read", "sql0?", flags=("raw_sql",)),
    },
    "sa.conn": {
        **_each("execute exec_driver_sql scalar scalars", op("database", "read", "sql0?", flags=("raw_sql",))),
        "begin": to("sa.conn"),
        "cursor": to("pg.cur"),
    },
    "sa.factory": {"()": to("sa.conn"), "begin": to("sa.conn")},
}

MODULES: dict[str, dict[str, Rule]] = {
    # JavaScript / TypeScript
    "mod:@supabase/supabase-js": {"createClient": to("sb", "rls1")},
    "mod:@supabase/ssr": {**_each("createBrowserClient createServerClient", to("sb", "rls1"))},
    "mod:firebase/firestore": _FS_MODULAR,
    "mod:firebase/firestore/lite": _FS_MODULAR,
    "mod:firebase/auth": _AUTH_MODULAR,
    "mod:firebase/storage": _STORAGE_MODULAR,
    "mod:firebase/database": _RTDB_MODULAR,
    "mod:firebase/functions": _FUNCTIONS_MODULAR,
    "mod:firebase/app": {"initializeApp": to("fb.app9"), "getApp": to("fb.app9")},
    **_FIREBASE_ADMIN_MODULAR,
    "mod:mongodb": {"MongoClient": to("mongo.client")},
    "mod:mongoose": {"model": to("mongoose.model", "model0"), **_each("startSession", to("mongo.session"))},
    # Python
    "mod:supabase": {**_each("create_client acreate_client", to("sb", "rls1")),
                     **_each("Client AsyncClient", to("sb"))},
    "mod:firebase_admin": {".firestore": to("mod:firebase_admin.firestore"), ".auth": to("mod:firebase_admin.auth"),
                           ".db": to("mod:firebase_admin.db"), ".storage": to("mod:firebase_admin.storage")},
    "mod:firebase_admin.firestore": {"client": to("fs.db")},
    "mod:firebase_admin.firestore_async": {"client": to("fs.db")},
    "mod:google.cloud.firestore": {**_each("Client AsyncClient", to("fs.db"))},
    "mod:firebase_admin.auth": {
        **_each("verify_id_token verify_session_cookie", op("auth", "read")),
        **_each("create_user get_user get_user_by_email get_user_by_phone_number update_user delete_user delete_users "
                "list_users set_custom_user_claims revoke_refresh_tokens generate_password_reset_link "
                "generate_email_verification_link create_custom_token create_session_cookie import_users",
                op("auth", "admin")),
    },
    "mod:firebase_admin.db": {"reference": to("rtdb.ref", "arg0")},
    "mod:firebase_admin.storage": {"bucket": to("gcs.bucket", "arg0")},
    "mod:google.cloud.storage": {"Client": to("gcs.storage")},
    "mod:pymongo": {"MongoClient": to("mongo.client")},
    "mod:pymongo.database": {"Database": to("mongo.db")},
    "mod:pymongo.collection": {"Collection": to("mongo.coll")},
    "mod:motor.motor_asyncio": {"AsyncIOMotorClient": to("mongo.client")},
    "mod:psycopg": {"connect": to("pg.conn"), ".Connection": to("pg.connclass"),
                    ".AsyncConnection": to("pg.connclass")},
    "mod:psycopg2": {"connect": to("pg.conn")},
    "mod:psycopg_pool": {**_each("ConnectionPool AsyncConnectionPool", to("pg.pool"))},
    "mod:sqlalchemy": {"create_engine": to("sa.engine")},
    "mod:sqlalchemy.orm": {"Session": to("sa.conn"), "sessionmaker": to("sa.factory")},
    "mod:sqlalchemy.ext.asyncio": {"create_async_engine": to("sa.engine"), "AsyncSession": to("sa.conn"),
                                   "async_sessionmaker": to("sa.factory")},
}

KINDS: dict[str, dict[str, Rule]] = {
    **_SUPABASE, **_FIRESTORE, **_FIREBASE_OBJECTS, **_MONGO, **_SQL, **MODULES,
    "ns:firebase": _FIREBASE_NS, "ns:firebase-admin": _FIREBASE_ADMIN_NS,
    "fb.app9": {}, "fb.auth9": {}, "fb.storage9": {}, "fb.functions9": {},
}

# A default import or `require()` of these modules is a namespace object of the given kind.
DEFAULT_IMPORTS = {
    "firebase": "ns:firebase", "firebase/app": "ns:firebase", "firebase/compat/app": "ns:firebase",
    "firebase-admin": "ns:firebase-admin", "mongoose": "mod:mongoose",
}

# Firestore FieldValue sentinels: modular functions, and the methods/attributes of `FieldValue` / Python `firestore`.
SENTINELS = frozenset({"serverTimestamp", "increment", "arrayUnion", "arrayRemove", "deleteField",
                       "Increment", "ArrayUnion", "ArrayRemove", "SERVER_TIMESTAMP", "DELETE_FIELD"})
SENTINEL_MODULES = frozenset({"mod:firebase/firestore", "mod:firebase/firestore/lite", "mod:firebase-admin/firestore",
                              "mod:firebase_admin.firestore", "mod:google.cloud.firestore"})

# Local modules (`./lib/supabase`, `app.db`) export clients; a name imported from one binds by these patterns.
LOCAL_CLIENT_NAMES = {"supabase": "sb"}  # imported local name contains key -> kind
LOCAL_FIREBASE_EXPORTS = {"db": "fs.db", "firestore": "fs.db", "auth": "fb.auth", "storage": "fb.storage",
                          "rtdb": "rtdb", "database": "rtdb"}
LOCAL_MODEL_DIR = "model"  # `import User from '../models/User'` -> a mongoose model

# A file is only parsed when its text contains one of these (every module above and every local heuristic does).
PREFILTER = (b"supabase", b"firebase", b"firestore", b"mongo", b"motor", b"psycopg", b"sqlalchemy", b"model",
             b"Model", b"google.cloud")
