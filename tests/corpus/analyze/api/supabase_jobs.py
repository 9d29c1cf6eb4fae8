import os

from supabase import Client, create_client

url = os.environ["SUPABASE_URL"]
service_key = os.environ["SUPABASE_SERVICE_ROLE_KEY"]
supabase: Client = create_client(url, service_key)


def pending_invoices():
    response = (
        supabase.table("invoices")
        .select("id, amount, customer_id")
        .eq("status", "pending")
        .execute()
    )
    return response.data


def mark_paid(invoice_id: int) -> None:
    supabase.table("invoices").update({"status": "paid"}).eq("id", invoice_id).execute()


def purge(customer_id: int) -> None:
    supabase.table("invoices").delete().eq("customer_id", customer_id).execute()


def add_customer(row: dict) -> None:
    supabase.table("customers").insert(row).execute()


def totals(month: str):
    return supabase.rpc("invoice_totals", {"month": month}).execute()


def store_pdf(name: str, data: bytes) -> None:
    supabase.storage.from_("invoices").upload(name, data)


def invite(email: str) -> None:
    supabase.auth.admin.invite_user_by_email(email)


def export_table(table: str):
    return supabase.table(table).select("*").execute()


def helper_for(client: Client, customer_id: int):
    return client.table("customers").select("*").eq("id", customer_id).execute()
