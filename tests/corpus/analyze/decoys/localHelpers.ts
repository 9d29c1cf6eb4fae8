// Look-alikes: local functions and objects that share names with SDK calls. None of these is a provider call.
type Doc = { id: string; data: Record<string, unknown> }

const cache = new Map<string, Doc[]>()

function collection(_db: unknown, name: string): string {
  return name
}

function doc(path: string, id: string) {
  return `${path}/${id}`
}

async function getDocs(name: string): Promise<Doc[]> {
  return cache.get(name) ?? []
}

async function updateDoc(path: string, data: Record<string, unknown>) {
  console.log('update', path, data)
}

const db = {
  collection(name: string) {
    return { get: async () => cache.get(name) ?? [], add: async (d: Doc) => cache.set(name, [d]) }
  },
}

const supabaseLike = {
  from(table: string) {
    return { select: (_cols: string) => Promise.resolve({ data: [], table }) }
  },
}

export async function run() {
  const items = await getDocs(collection(null, 'users'))
  await updateDoc(doc('users', '1'), { n: 1 })
  await db.collection('orders').get()
  await db.collection('orders').add({ id: '1', data: {} })
  await supabaseLike.from('todos').select('*')
  const parts = Array.from(items).map((d) => d.id)
  const storage = { from: (b: string) => ({ upload: (p: string) => `${b}/${p}` }) }
  storage.from('avatars').upload('x.png')
  return parts
}
