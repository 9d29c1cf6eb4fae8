"""An in-memory repository whose method names mirror pymongo and Firestore. Nothing here talks to a provider."""

from collections import defaultdict


class Collection:
    def __init__(self):
        self.rows = []

    def find_one(self, query):
        return next((r for r in self.rows if all(r.get(k) == v for k, v in query.items())), None)

    def insert_one(self, row):
        self.rows.append(row)

    def delete_many(self, query):
        self.rows = [r for r in self.rows if not all(r.get(k) == v for k, v in query.items())]


class Database:
    def __init__(self):
        self._collections = defaultdict(Collection)

    def __getattr__(self, name):
        return self._collections[name]

    def collection(self, name):
        return self._collections[name]


db = Database()


def execute(sql, params=()):
    return [sql, params]


class FakeCursor:
    def execute(self, sql):
        return sql


def demo():
    db.users.insert_one({"id": 1})
    db.collection("users").find_one({"id": 1})
    db.users.delete_many({"id": 1})
    execute("SELECT * FROM users")
    FakeCursor().execute("DELETE FROM users")
