from datetime import datetime, timezone

import pymongo
from pymongo import MongoClient, UpdateOne
from pymongo.collection import Collection

client = MongoClient("mongodb://localhost:27017")
db = client.shop
products = db["products"]


def find_product(sku: str):
    return products.find_one({"sku": sku})


def list_category(category: str):
    return list(db.products.find({"category": category}).sort("name", pymongo.ASCENDING).limit(50))


def add_review(sku: str, review: dict) -> None:
    db.reviews.insert_one({"sku": sku, **review, "at": datetime.now(timezone.utc)})


def restock(levels: dict[str, int]) -> None:
    ops = [UpdateOne({"sku": sku}, {"$set": {"stock": n}}) for sku, n in levels.items()]
    products.bulk_write(ops)


def drop_old_carts(before: datetime) -> int:
    return db.carts.delete_many({"updated": {"$lt": before}}).deleted_count


def sales_by_day():
    return list(client["shop"]["orders"].aggregate([{"$group": {"_id": "$day", "n": {"$sum": 1}}}]))


def watch_orders():
    with db.orders.watch() as stream:
        for change in stream:
            yield change


def ensure_indexes() -> None:
    products.create_index("sku", unique=True)


def checkout(cart_id: str) -> None:
    with client.start_session() as session:
        session.with_transaction(lambda s: db.orders.insert_one({"cart": cart_id}, session=s))


def count_in(coll: Collection, query: dict) -> int:
    return coll.count_documents(query)
